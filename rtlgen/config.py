"""YAML precision configuration -> `rtlgen.passes.PrecisionConfig` (parsed once, at the edge).

```yaml
input: ap_fixed<16,6>            # type of the input stream (of every input not in `inputs`)
inputs:                          # a model with several inputs: a type per input name
  jet_image: ap_ufixed<8,0>
default:                         # for float (unquantized) constants and results
  weight_width: 16               # bits of float weights/biases (integer bits from the values)
  bn_width: 18                   # bits of BatchNorm scale/shift
  result_frac: 10                # fractional bits of float-model layer results
  result_int_bits: 24            # most integer bits of a float-model result (beyond: saturate)
rounding: conv                   # conv (half to even, = QKeras) | rnd (half up) | trn (floor)
overflow: sat                    # sat | wrap
layers:                          # explicit types per Keras layer name
  conv1: {weight: 'ap_fixed<8,2>', bias: 'ap_fixed<12,4>', result: 'ap_fixed<16,6>'}
  dense:
    result: ap_fixed<18,8>
```
Inside ``{...}`` flow mappings, quote precisions (YAML splits ``ap_fixed<8,2>`` at the comma);
in block style they need no quotes. Precisions are hls4ml-style strings (`FixedType.parse`: ``ap_fixed<W,I>``, ``fixed<W,I>``,
``ap_ufixed<W,I>``, ``ap_int<W>``). QKeras quantizers in the model always win over these.
Every key is checked: an unknown one is an `RtlgenError` naming it and the accepted keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rtlgen.frontend.limits import read_yaml
from rtlgen.passes import DEFAULT_PRECISION, LayerPrecision, PrecisionConfig
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding

__all__ = ["load_config", "config_from_dict"]

_TOP_KEYS = ("input", "inputs", "default", "rounding", "overflow", "layers")
_DEFAULT_KEYS = ("weight_width", "bn_width", "result_frac", "result_int_bits")
_LAYER_KEYS = ("weight", "bias", "result")
_ROUNDING = {
    "conv": Rounding.CONVERGENT,
    "convergent": Rounding.CONVERGENT,
    "ap_rnd_conv": Rounding.CONVERGENT,
    "rnd": Rounding.HALF_UP,
    "half_up": Rounding.HALF_UP,
    "ap_rnd": Rounding.HALF_UP,
    "trn": Rounding.TRUNCATE,
    "truncate": Rounding.TRUNCATE,
    "ap_trn": Rounding.TRUNCATE,
}
_OVERFLOW = {
    "sat": Overflow.SATURATE,
    "saturate": Overflow.SATURATE,
    "ap_sat": Overflow.SATURATE,
    "wrap": Overflow.WRAP,
    "ap_wrap": Overflow.WRAP,
}


#: A precision config is a few lines per layer; 1 MiB is thousands of layers.
MAX_CONFIG_BYTES = 1 << 20
#: Nodes of the parsed YAML, counting every use of an alias: a "billion laughs" document of
#: nested aliases is tiny as text and exponential once walked.
MAX_CONFIG_NODES = 100_000
MAX_CONFIG_DEPTH = 32


def load_config(path: str | Path) -> PrecisionConfig:
    """Read a YAML precision config file (``yaml.safe_load``: plain data only, no tags that
    build Python objects), bounded in size, nesting and alias expansion."""
    path = Path(path)
    data = read_yaml(
        path, f"precision config {path}", MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_NODES
    )
    if data is None:
        data = {}
    return config_from_dict(data, str(path))


def config_from_dict(data: Any, origin: str = "precision config") -> PrecisionConfig:
    """A `PrecisionConfig` from the parsed YAML mapping (missing keys keep the defaults)."""
    _check_keys(data, _TOP_KEYS, origin)
    d = DEFAULT_PRECISION
    input_type = _precision(data["input"], f"{origin}: input") if "input" in data else d.input
    inputs_raw = data.get("inputs") or {}
    if not isinstance(inputs_raw, Mapping):
        raise RtlgenError(
            f"{origin}: 'inputs' must map input names to precisions, got {_short(inputs_raw)}"
        )
    inputs = tuple(
        (str(name), _precision(value, f"{origin}: inputs.{name}"))
        for name, value in inputs_raw.items()
    )
    defaults = data.get("default") or {}
    _check_keys(defaults, _DEFAULT_KEYS, f"{origin}: default")
    weight_width = _width(defaults, "weight_width", d.weight_width, origin)
    bn_width = _width(defaults, "bn_width", d.bn_width, origin)
    result_frac = _integer(
        defaults.get("result_frac", d.result_frac), f"{origin}: default.result_frac"
    )
    if not -62 <= result_frac <= 62:
        raise RtlgenError(
            f"{origin}: default.result_frac = {result_frac} (supported: -62..62 fractional bits)"
        )
    result_int_bits = _integer(
        defaults.get("result_int_bits", d.result_int_bits), f"{origin}: default.result_int_bits"
    )
    if not 0 <= result_int_bits <= 60:
        raise RtlgenError(
            f"{origin}: default.result_int_bits = {result_int_bits} (supported: 0..60)"
        )
    rounding = _choice(data.get("rounding"), _ROUNDING, d.rounding, f"{origin}: rounding")
    overflow = _choice(data.get("overflow"), _OVERFLOW, d.overflow, f"{origin}: overflow")
    layers_raw = data.get("layers") or {}
    if not isinstance(layers_raw, Mapping):
        raise RtlgenError(f"{origin}: 'layers' must map layer names to {{weight, bias, result}}")
    layers = []
    for name, spec in layers_raw.items():
        where = f"{origin}: layers.{name}"
        _check_keys(spec, _LAYER_KEYS, where)
        layers.append(
            (
                str(name),
                LayerPrecision(
                    **{
                        key: _precision(spec[key], f"{where}.{key}")
                        if spec.get(key) is not None
                        else None
                        for key in _LAYER_KEYS
                    }
                ),
            )
        )
    return PrecisionConfig(
        input=input_type,
        inputs=inputs,
        weight_width=weight_width,
        bn_width=bn_width,
        result_frac=result_frac,
        result_int_bits=result_int_bits,
        rounding=rounding,
        overflow=overflow,
        layers=tuple(layers),
    )


def _check_keys(data: Any, accepted: tuple[str, ...], where: str) -> None:
    if not isinstance(data, Mapping):
        raise RtlgenError(
            f"{where}: expected a mapping with keys {', '.join(accepted)}, got {_short(data)}"
        )
    for key in data:
        if key not in accepted:
            hint = ""
            if isinstance(key, str | int) and ">" in str(key):
                # YAML splits an unquoted ap_fixed<8,2> at its comma inside {...}
                hint = "; quote precisions inside {...} mappings, e.g. {weight: 'ap_fixed<8,2>'}"
            raise RtlgenError(
                f"{where}: unknown key {_short(key)} (accepted: {', '.join(accepted)}){hint}"
            )


def _precision(value: Any, where: str) -> FixedType:
    if not isinstance(value, str):
        raise RtlgenError(
            f"{where}: expected a precision such as 'ap_fixed<16,6>', got {_short(value)}"
        )
    try:
        return FixedType.parse(value)
    except RtlgenError as exc:
        raise RtlgenError(f"{where}: {exc}") from None


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RtlgenError(f"{where}: expected an integer, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    """A value for a one-line message: its repr, cut short."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _width(defaults: Mapping[str, Any], key: str, default: int, origin: str) -> int:
    value = _integer(defaults.get(key, default), f"{origin}: default.{key}")
    if not 2 <= value <= 62:
        raise RtlgenError(f"{origin}: default.{key} = {value} (supported: 2..62 bits)")
    return value


def _choice(value: Any, options: Mapping[str, Any], default: Any, where: str) -> Any:
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in options:
        raise RtlgenError(
            f"{where}: {_short(value)} is not one of {', '.join(sorted(set(options)))}"
        )
    return options[value.lower()]
