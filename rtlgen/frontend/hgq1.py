"""HGQ (v1, PyPI ``HGQ`` 0.2, TensorFlow/Keras 2) proxy models, read without HGQ or TensorFlow.

``HGQ.proxy.to_proxy_model(model)`` (what hls4ml's HGQ examples save as Keras-2 ``.h5``)
turns an HGQ network into plain Keras layers (``Dense``, ``Conv2D``, ``ReLU``, pooling ...)
whose kernels and biases hold the already quantized values, with a ``FixedPointQuantizer``
layer wherever HGQ quantized an activation. Such a layer's config holds ``RND``, ``SAT`` and
``shape``; its three variables (int8, of that ``shape``: per tensor, per channel or per
element, with a leading batch axis of 1) are ``keep_negative`` ``k``, ``bits`` ``b`` (the
sign included) and ``integers`` ``I`` (the sign included; ``ap_fixed<b, I>``). Its inference,
HGQ's ``gfixed_quantizer``, in float32::

    f = b - I;  m = RND(x * 2**f)        TRN: floor, RND: floor(v + 0.5), RND_CONV: half to even
    hi = 2**(b - k) - 1;  lo = -k (hi + 1)              (SAT_SYM: lo = -k hi)
    SAT: m = clip(m, lo, hi);  WRAP: m = (m - lo) mod (hi - lo + 1) + lo
    y = m * 2**-f, and 0 where b == 0

which is `rtlgen.ops.hgq2.FixedQuantize` with ``i = I - k`` (an element with ``b == 0`` is
pruned: all widths 0). The other modes (``TRN_ZERO``, ``RND_ZERO``, ``RND_MIN_INF``,
``RND_INF``, ``SAT_ZERO``, ``WRAP_SM``) are refused in one line.

A model holding a ``FixedPointQuantizer`` is an HGQ proxy: its Dense/Conv kernels and biases
are HGQ's quantized values, kept exactly (`exact_proxy_weights`) instead of being given
rtlgen's float-weight types. HGQ's forward pass is float32; it is exact (and so equals
rtlgen's integer arithmetic) while a layer's sums stay within float32's 24-bit significand.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rtlgen import ir
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.fixed import Overflow, Rounding

from .hgq2 import MAX_ACTIVATION_WIDTHS, Exact
from .keras_config import KerasLayer, LayerOut, Shape, WeightSource, layer_weights

#: the Keras class names of HGQ's proxy quantizer (``registered_name`` ``HGQ>...``)
QUANTIZER_CLASSES = ("FixedPointQuantizer", "HGQ>FixedPointQuantizer")
ROUNDING = {"TRN": Rounding.TRUNCATE, "RND": Rounding.HALF_UP, "RND_CONV": Rounding.CONVERGENT}
OVERFLOW = {"WRAP": (Overflow.WRAP, False), "SAT": (Overflow.SATURATE, False)}
OVERFLOW["SAT_SYM"] = (Overflow.SATURATE, True)
ALL_ROUNDING = (*ROUNDING, "TRN_ZERO", "RND_ZERO", "RND_MIN_INF", "RND_INF")
ALL_OVERFLOW = (*OVERFLOW, "SAT_ZERO", "WRAP_SM")
#: widths beyond these are not exact in HGQ's float32 arithmetic (24-bit significand)
MAX_BITS = 24
_VARIABLES = ("keep_negative", "bits", "integers")


def _mode(layer: KerasLayer, key: str, table: dict, known: tuple[str, ...]) -> object:
    value = layer.config.get(key, "TRN" if key == "RND" else "WRAP")
    if not isinstance(value, str) or value not in known:
        raise ModelFileError(
            f"{layer.where}: {key}={str(value)[:40]!r} is not an HGQ mode ({', '.join(known)})"
        )
    if value not in table:
        raise UnsupportedError(
            f"{layer.where}: {key}={value!r} is not supported (supported: {', '.join(table)})"
        )
    return table[value]


def _stored_shape(layer: KerasLayer) -> Shape:
    shape = layer.config.get("shape")
    if (
        not isinstance(shape, list | tuple)
        or len(shape) > 8
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 < d < 1 << 24 for d in shape
        )
    ):
        raise ModelFileError(
            f"{layer.where}: 'shape' = {str(shape)[:40]} is not the shape of its widths"
        )
    return tuple(shape)


def _per_element(layer: KerasLayer, value: np.ndarray, shape: Shape) -> np.ndarray:
    """A width variable broadcast (as TensorFlow does, batch axis included) to ``shape``
    and laid out as ``(positions, channels)``."""
    try:
        full = np.broadcast_to(value, np.broadcast_shapes(value.shape, (1, *shape)))
    except ValueError:
        raise ModelFileError(
            f"{layer.where}: widths of shape {value.shape} do not broadcast to its input "
            f"{(None, *shape)}"
        ) from None
    if full.shape != (1, *shape):
        raise ModelFileError(
            f"{layer.where}: widths of shape {value.shape} do not broadcast to its input "
            f"{(None, *shape)}"
        )
    return full.reshape(-1, shape[-1]).astype(np.int64)


def read_fixed_point_quantizer(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    from rtlgen.ops.hgq2 import _FLAG_TYPE, _WIDTH_TYPE, FixedQuantize

    rounding = _mode(layer, "RND", ROUNDING, ALL_ROUNDING)
    overflow, symmetric = _mode(layer, "SAT", OVERFLOW, ALL_OVERFLOW)  # type: ignore[misc]
    stored = _stored_shape(layer)
    positions = int(np.prod(shape[:-1], dtype=np.int64))
    if positions * shape[-1] > MAX_ACTIVATION_WIDTHS and int(np.prod(stored)) > shape[-1]:
        raise UnsupportedError(
            f"{layer.where}: {positions * shape[-1]:,} activation widths (per element of "
            f"{shape}); rtlgen supports up to {MAX_ACTIVATION_WIDTHS:,}"
        )
    raw = layer_weights(source, layer, dict.fromkeys(_VARIABLES, stored))
    for name, value in raw.items():
        if value.dtype.kind not in "iu" and not np.array_equal(value, np.round(value)):
            raise ModelFileError(f"{layer.where}: '{name}' holds non-integer widths")
    k, b, big_i = (_per_element(layer, raw[n], shape) for n in _VARIABLES)
    if np.any((k != 0) & (k != 1)):
        raise ModelFileError(f"{layer.where}: keep_negative must be 0 or 1")
    if np.any(b < 0):
        raise ModelFileError(f"{layer.where}: bits must not be negative")
    pruned = b == 0
    i, f = big_i - k, b - big_i
    live = ~pruned
    if np.any(live & (b < k)):
        raise ModelFileError(f"{layer.where}: a signed element has fewer than 1 bit")
    if np.any(live & ((np.abs(i) > MAX_BITS) | (np.abs(f) > MAX_BITS) | (b > MAX_BITS))):
        raise UnsupportedError(
            f"{layer.where}: widths beyond {MAX_BITS} bits (integer, fractional or total) are "
            "not exact in HGQ's float32 arithmetic; not supported"
        )
    zero = np.zeros_like(k)
    node = FixedQuantize(
        layer.name,
        shape,
        shape,
        keep_negative=ir.QTensor(np.where(pruned, zero, k), _FLAG_TYPE),
        integer_bits=ir.QTensor(np.where(pruned, zero, i), _WIDTH_TYPE),
        frac_bits=ir.QTensor(np.where(pruned, zero, f), _WIDTH_TYPE),
        rounding=rounding,  # type: ignore[arg-type]
        overflow=overflow,
        symmetric=symmetric,
        source=layer.name,
    )
    return LayerOut([node], shape)


def is_proxy_model(layers: list[KerasLayer]) -> bool:
    return any(layer.class_name in QUANTIZER_CLASSES for layer in layers)


def exact_proxy_weights(graph: ir.ModelGraph) -> ir.ModelGraph:
    """An HGQ proxy model's float Dense/Conv kernels and biases (HGQ's quantized values) as
    exact constants (`rtlgen.frontend.hgq2.Exact`): each keeps its own bits."""
    nodes = []
    for node in graph.nodes:
        if node.op == "lut_activation":
            raise UnsupportedError(
                f"layer '{node.source or node.name}': a float activation in an HGQ proxy model "
                "(HGQ computes it in float32 before its FixedPointQuantizer; rtlgen's table "
                "would round twice) is not supported (supported: ReLU, linear)"
            )
        if isinstance(node, ir.Conv | ir.Dense):
            where = f"layer '{node.source or node.name}'"
            changes = {}
            for key in ("weights", "bias"):
                tensor = getattr(node, key)
                if isinstance(tensor, ir.FloatTensor) and tensor.quantizer is None:
                    changes[key] = ir.FloatTensor(
                        tensor.values, Exact(f"{where} {key} (HGQ proxy)")
                    )
            node = node.replace(**changes) if changes else node
        nodes.append(node)
    return dataclasses.replace(graph, nodes=tuple(nodes))


def refuse_unary_lut(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    raise UnsupportedError(
        f"{layer.where}: HGQ's table activations are not supported: make the proxy model "
        "without them (HGQ.proxy.to_proxy_model(model) with the default "
        "unary_lut_max_table_size=-1)"
    )
