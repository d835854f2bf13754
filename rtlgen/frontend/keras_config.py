"""Keras 2 model configs (JSON) + weights -> unlowered `ModelGraph`.

Accepted layouts (what ``model.to_json()`` / ``model.save()`` wrote across Keras 2.0 - 2.15,
tf-keras 2.16+, and the ``config.json`` of a ``.keras`` archive):
- ``Sequential`` whose ``config`` is a bare list of layers (Keras 2.0);
- ``Sequential`` ``{"name", "layers"}`` with or without an ``InputLayer`` (the input shape then
  comes from ``batch_input_shape`` / ``build_config`` of the first layer);
- ``Model`` / ``Functional`` with ``inbound_nodes`` (Keras 2 lists or Keras 3 ``args``) that
  form one linear chain from the single input to the single output;
- layer entries with or without ``module`` / ``registered_name``.

Nothing from the file is executed: layers are recognized by class name, quantizers are
parsed with `rtlgen.quant.quantizers.parse_quantizer` (``ast`` literals only).

The graph is unlowered: weights are `FloatTensor` with the QKeras quantizer the layer applies
to them (kernel quantizers as QKeras really applies them, see ``Quantizer.for_kernel``).
BatchNormalization becomes a `ScaleShift` with ``scale = gamma / sqrt(var + eps)`` and
``shift = beta - mean * scale`` computed in float64 from the stored float32 parameters.
Keras computes the same expression in float32 at inference, so the two differ by float32
rounding (relative ~1e-7), far below the 18-bit default BN precision of
`rtlgen.passes.PrecisionConfig` (2**-17 relative): after quantization they round to the same
mantissas except for values within ~1e-7 of a rounding boundary.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from rtlgen import ir
from rtlgen.quant.activations import ActivationKind
from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError
from rtlgen.quant.quantizers import (
    QuantizedLeakyRelu,
    QuantizedReluPo2,
    Quantizer,
    TableQuantizer,
    is_quantizer_spec,
    parse_quantizer,
)
from rtlgen.quant.threshold import is_step_activation, refuse_data_dependent

from .hdf5 import StoredArray
from .limits import (
    DEFAULT_LIMITS,
    MAX_DIMENSION,
    Limits,
    check_bytes,
    check_depth,
    check_parameters,
    element_count,
)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class KerasLayer:
    """One layer entry of a model config."""

    class_name: str
    name: str
    config: Mapping[str, Any]
    build_config: Mapping[str, Any] | None = None  # entry-level "build_config" (Keras >= 2.13)
    #: written by Keras 3 (`written_by_keras3`), whose hard_sigmoid differs from Keras 2's
    keras3: bool = False
    #: the wrapper the layer was read from (``TimeDistributed``: its ``layer``)
    wrapper: str | None = None
    #: the nested models (a Sequential or Functional used as a layer) the layer was read
    #: from, outermost first: their layers are inlined into the graph (`model_layers`)
    scope: tuple[str, ...] = ()
    #: where a ``.keras`` archive keeps the layer's variables (``layers/dense_1``,
    #: ``layers/sequential/layers/dense``): its class in snake case, numbered per class
    #: within its model's layer list (`_archive_paths`)
    archive_path: str = ""

    @property
    def where(self) -> str:
        kind = f"{self.wrapper}({self.class_name})" if self.wrapper else self.class_name
        return f"layer '{self.name}' ({kind})"


_FOLDED_LAYERS = ("QConv2DBatchnorm", "QDenseBatchnorm", "QDepthwiseConv2DBatchnorm")
#: layers whose weights a ``.keras`` archive keeps in their ``cell`` sub-layer
#: (``layers/lstm/cell/vars/<i>``: kernel, recurrent_kernel, bias)
_CELL_LAYERS = ("SimpleRNN", "LSTM", "GRU", "QSimpleRNN", "QLSTM", "QGRU")
_UNSUPPORTED_HINTS = {
    "Lambda": "Lambda layers hold Python code, which rtlgen never runs",
    "TFOpLambda": "TensorFlow ops called on Keras tensors (TFOpLambda) are not layers rtlgen knows",
    "PruneLowMagnitude": "the model is still wrapped for pruning: call "
    "tfmot.sparsity.keras.strip_pruning(model) before saving it",
    "Bidirectional": "a bidirectional RNN runs the sequence backwards too (go_backwards); "
    "only forward SimpleRNN/LSTM/GRU layers are supported",
    "Masking": "masked (variable-length) sequences are not supported: recurrent layers "
    "take a fixed number of time steps",
    "TimeDistributed": "rtlgen reads TimeDistributed around "
    "Dense, QDense, Activation, QActivation and Dropout (which act on the last axis at every "
    "position anyway)",
    "RNN": "a generic RNN of a custom cell is not read; use the SimpleRNN, LSTM or GRU layers",
}
#: Keras activation names that are `ActivationKind` tables of the same name
_TABLE_NAMES = (
    "sigmoid",
    "tanh",
    "hard_sigmoid",
    "softsign",
    "elu",
    "selu",
    "silu",
    "gelu",
    "softplus",
    "hard_silu",
    "mish",
    "exponential",
)
#: other names of tables: tf.keras 2.15 saves silu as swish; Keras 3's hard_swish is
#: hard_silu (x * relu6(x + 3) / 6, also MobileNetV3's definition)
_TABLE_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}
_KERAS_ACTIVATIONS = (
    "linear, relu, relu6, hard_tanh, leaky_relu, sigmoid, tanh, hard_sigmoid, softsign, elu, "
    "selu, silu (swish), gelu, softplus, hard_silu (hard_swish), mish, exponential, "
    "softmax (last layer only)"
)


def supported_layers() -> tuple[str, ...]:
    """Every Keras layer class rtlgen reads: ``InputLayer`` and those of the registered ops."""
    from rtlgen.ops.registry import keras_classes

    return ("InputLayer", *keras_classes())


def _unsupported_layer(layer: KerasLayer) -> UnsupportedError:
    hint = _UNSUPPORTED_HINTS.get(layer.class_name)
    if layer.class_name.startswith("ops."):
        hint = (
            "It is a Keras 3 operation on a tensor (such as x + 3.0 or x * (1.0 / 6.0) in "
            "keras.applications' MobileNetV3 hard_sigmoid), not a layer; write it with layers "
            "(Activation('hard_sigmoid'), Activation('hard_swish'), Rescaling)"
        )
    reason = f"{hint}. " if hint else ""
    if layer.class_name.startswith("ops."):  # the operations, not every layer (a short line)
        operations = [name for name in supported_layers() if name.startswith("ops.")]
        return UnsupportedError(
            f"{layer.where}: layer type '{layer.class_name}' is not supported. {reason}"
            f"Supported operations: {', '.join(operations)}"
        )
    return UnsupportedError(
        f"{layer.where}: layer type '{layer.class_name}' is not supported. {reason}"
        f"Supported layers: {', '.join(supported_layers())}"
    )


# ---------------------------------------------------------------------------------------
# typed access to config values
# ---------------------------------------------------------------------------------------
_MISSING = object()


def config_value(layer: KerasLayer, key: str, default: Any = _MISSING) -> Any:
    if key in layer.config:
        return layer.config[key]
    if default is _MISSING:
        raise ModelFileError(f"{layer.where}: config has no '{key}'")
    return default


def config_int(layer: KerasLayer, key: str, value: Any) -> int:
    # Floats are refused too (Keras writes sizes as JSON integers): int(nan) and int(inf)
    # raise, and 1e300 would pass as a 300-digit size.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelFileError(f"{layer.where}: '{key}' = {value!r} is not a positive integer")
    if value > MAX_DIMENSION:
        raise ModelFileError(
            f"{layer.where}: '{key}' = {value} is too large (supported: up to {MAX_DIMENSION})"
        )
    return value


def config_ints(layer: KerasLayer, key: str, rank: int, default: Any = _MISSING) -> tuple[int, ...]:
    value = config_value(layer, key, default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value] * rank
    if not isinstance(value, list | tuple) or len(value) != rank:
        raise ModelFileError(f"{layer.where}: '{key}' = {value!r} is not {rank} integer(s)")
    return tuple(config_int(layer, key, v) for v in value)


def config_str(layer: KerasLayer, key: str, default: Any = _MISSING) -> str:
    value = config_value(layer, key, default)
    if not isinstance(value, str):
        raise ModelFileError(f"{layer.where}: '{key}' = {value!r} is not a string")
    return value


def config_bool(layer: KerasLayer, key: str, default: bool) -> bool:
    value = config_value(layer, key, default)
    if not isinstance(value, bool | int):
        raise ModelFileError(f"{layer.where}: '{key}' = {value!r} is not a boolean")
    return bool(value)


def config_number(layer: KerasLayer, key: str, default: Any = _MISSING) -> float | None:
    value = config_value(layer, key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelFileError(f"{layer.where}: '{key}' = {value!r} is not a number")
    return float(value)


def check_channels_last(layer: KerasLayer) -> None:
    fmt = layer.config.get("data_format")
    if fmt not in (None, "channels_last"):
        raise UnsupportedError(
            f"{layer.where}: data_format={fmt!r} is not supported (rtlgen supports channels_last only)"
        )


# ---------------------------------------------------------------------------------------
# model topology
# ---------------------------------------------------------------------------------------
#: Longest layer name accepted (Keras's own names are far shorter).
MAX_LAYER_NAME = 120


#: model classes read as a layer of another model (their layers are inlined)
_NESTED_MODELS = ("Sequential", "Functional", "Model")


def _layer_entry(
    entry: Any, index: int, keras3: bool = False, scope: tuple[str, ...] = ()
) -> KerasLayer:
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ModelFileError(
            f"layer entry {index} is not a {{'class_name': ..., 'config': ...}} object"
        )
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ModelFileError(
            f"layer entry {index} ({entry['class_name']}): 'config' is not an object"
        )
    name = config.get("name", entry.get("name"))
    if not isinstance(name, str) or not name:
        raise ModelFileError(f"layer entry {index} ({entry['class_name']}) has no name")
    if len(name) > MAX_LAYER_NAME or not name.isprintable():
        # The name reaches the manifest, REPORT.md and Verilog comments (a fused layer's
        # source joins up to ~4 names with '+', within the manifest's 512 characters).
        raise ModelFileError(
            f"layer entry {index} ({entry['class_name']}): name {name[:40]!r} is not supported "
            f"(printable text of at most {MAX_LAYER_NAME} characters)"
        )
    build = entry.get("build_config")
    class_name = entry["class_name"]
    module = entry.get("module")
    if isinstance(module, str) and module.startswith("keras.src.ops."):
        # a Keras 3 operation on a tensor (``x + 3.0``: keras.src.ops.numpy.Add), which must
        # not be read as the layer of the same class name (layers.Add)
        class_name = f"ops.{class_name}"
    registered = entry.get("registered_name")
    if isinstance(registered, str) and registered.startswith("hgq>"):
        class_name = registered  # HGQ2's QDense/QConv2D are not QKeras's (`rtlgen.ops.hgq2`)
    inner = config.get("layer")
    if (
        class_name == "TimeDistributed"
        and isinstance(inner, dict)
        and inner.get("class_name") in _TIME_DISTRIBUTED
        and isinstance(inner.get("config"), dict)
    ):
        # the wrapped layer under the wrapper's name: it acts on the last axis at every
        # position, as rtlgen applies these layers to (time, features) inputs anyway
        class_name, config = inner["class_name"], {**inner["config"], "name": name}
        return KerasLayer(
            class_name,
            name,
            config,
            build if isinstance(build, dict) else None,
            keras3=keras3,
            wrapper="TimeDistributed",
            scope=scope,
        )
    return KerasLayer(
        class_name,
        name,
        config,
        build if isinstance(build, dict) else None,
        keras3=keras3,
        scope=scope,
    )


#: layers read inside a ``TimeDistributed``: the same layer on every time step
_TIME_DISTRIBUTED = ("Dense", "QDense", "Activation", "QActivation", "Dropout")

#: the key of the input a Sequential without an InputLayer gets (not a valid layer name)
_SEQUENTIAL_INPUT = "\x00input"


@dataclass(frozen=True)
class KerasModel:
    """The layers of a model config and how they connect.

    ``layers``: in config order (the order a ``.keras`` archive numbers their weights);
    ``inbound``: layer name -> the layers whose outputs it takes, in order (a Sequential's
    layers each take the one before); ``inputs`` / ``outputs``: the model's input and
    output layers.
    """

    name: str
    layers: tuple[KerasLayer, ...]
    sequential: bool
    inbound: Mapping[str, tuple[str, ...]]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def written_by_keras3(model_config: Mapping[str, Any], keras_version: Any = None) -> bool:
    """Whether Keras 3 wrote the config: the version the file declares (a ``.keras``
    archive's metadata.json, an HDF5 file's ``keras_version``, Keras 2's ``to_json()``),
    else what only Keras 3 writes: layer dtype policies as dicts (Keras >= 3.4; 3.0-3.3
    write "float32"), an InputLayer's ``batch_shape``, Functional inbound nodes as
    ``{"args": ...}``."""
    declared = keras_version if keras_version is not None else model_config.get("keras_version")
    if isinstance(declared, str):
        major = declared.split(".")[0]
        if major.isdigit():
            return int(major) >= 3
    config = model_config.get("config")
    entries = config.get("layers") if isinstance(config, dict) else config
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            continue
        layer_config = entry["config"]
        dtype = layer_config.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") != "Policy":  # Keras 2's mixed
            return True
        if entry.get("class_name") == "InputLayer" and "batch_shape" in layer_config:
            return True
        nodes = entry.get("inbound_nodes")
        if isinstance(nodes, list) and nodes and isinstance(nodes[0], dict):
            return True
    return False


def is_keras3_layer(layer: KerasLayer) -> bool:
    """A layer of a Keras 3 file (or one whose dtype policy is a dict, as only Keras 3 writes
    them: layers made from another, `rtlgen.ops.hgq2`)."""
    return layer.keras3 or isinstance(layer.config.get("dtype"), dict)


def model_layers(
    model_config: Mapping[str, Any],
    keras3: bool = False,
    scope: tuple[str, ...] = (),
    prefix: str = "layers",
) -> KerasModel:
    """The layers of a ``Sequential`` or ``Model``/``Functional`` config and their wiring
    (``keras3``: the file was written by Keras 3, `written_by_keras3`).

    Functional graphs may branch and join (DAGs of any shape); a layer called more than
    once (a shared layer), a cycle, a reference to an unknown layer and a tensor index other
    than 0 are refused in one line. A model used as a layer (a nested Sequential or
    Functional of one output, called once) is inlined: its layers take its place, reading
    what it read (`_inline_nested`). ``scope`` and ``prefix``: the nested models this config
    is inside and where a ``.keras`` archive keeps its layers.
    """
    if len(scope) > MAX_NESTED_MODELS:
        raise UnsupportedError(
            f"nested model '{scope[-1]}': models nested more than {MAX_NESTED_MODELS} deep"
        )
    class_name = model_config.get("class_name")
    config = model_config.get("config")
    if not isinstance(class_name, str) or config is None:
        raise ModelFileError(
            "not a Keras model config: expected {'class_name': ..., 'config': ...}"
        )
    if class_name == "Sequential":
        if isinstance(config, list):  # Keras 2.0
            entries, name = config, "sequential"
        elif isinstance(config, dict) and isinstance(config.get("layers"), list):
            entries, name = config["layers"], config.get("name") or "sequential"
        else:
            raise ModelFileError("Sequential config has no list of layers")
        layers = _archive_paths(
            [_layer_entry(e, i, keras3, scope) for i, e in enumerate(entries)], True, prefix
        )
        seen: set[str] = set()
        for layer in layers:
            if layer.name in seen:
                raise ModelFileError(f"two layers named '{layer.name}'")
            seen.add(layer.name)
        inbound = {
            layer.name: (() if index == 0 else (layers[index - 1].name,))
            for index, layer in enumerate(layers)
        }
        ends = ((layers[0].name,), (layers[-1].name,)) if layers else ((), ())
        model = KerasModel(str(name), tuple(layers), True, inbound, *ends)
        return _inline_nested(model, _nested(entries, layers, keras3))
    if class_name in ("Model", "Functional"):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ModelFileError(f"{class_name} config has no list of layers")
        return _functional_graph(
            str(config.get("name") or "model"), config, keras3, scope, prefix
        )
    raise UnsupportedError(
        f"model class '{class_name}' is not supported (supported: Sequential, Model/Functional)"
    )


#: how deep models may nest in one another (a backbone inside a model is 1)
MAX_NESTED_MODELS = 8


def _archive_paths(layers: list[KerasLayer], sequential: bool, prefix: str) -> list[KerasLayer]:
    """``layers`` (one model's list, in config order) with their ``.keras`` archive paths:
    ``<prefix>/<snake class>[_N]``, numbered per class in that order (a Sequential's
    InputLayer is not in its layer list, so not numbered; a wrapped layer is numbered by its
    wrapper's class and keeps its variables in the wrapper's ``layer``)."""
    used: dict[str, int] = {}
    out = []
    for layer in layers:
        if sequential and layer.class_name == "InputLayer":
            out.append(layer)
            continue
        key = _snake_case((layer.wrapper or layer.class_name).split(">")[-1])
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        path = f"{prefix}/{key}" + ("/layer" if layer.wrapper else "")
        out.append(dataclasses.replace(layer, archive_path=path))
    return out


def _nested(
    entries: Sequence[Any], layers: Sequence[KerasLayer], keras3: bool
) -> dict[str, KerasModel]:
    """The models among ``layers`` (a nested Sequential/Functional), each read with its
    layers in its scope."""
    nested = {}
    for entry, layer in zip(entries, layers, strict=True):
        if layer.class_name in _NESTED_MODELS:
            nested[layer.name] = model_layers(
                {"class_name": layer.class_name, "config": entry.get("config")},
                keras3,
                (*layer.scope, layer.name),
                f"{layer.archive_path}/layers",
            )
    return nested


def _inline_nested(model: KerasModel, nested: Mapping[str, KerasModel]) -> KerasModel:
    """``model`` with each nested model's layers in its place: a nested model's inputs
    read what it read (its InputLayers dropped), and what read it reads its output. A
    nested model that is itself the model's input keeps its inputs."""
    if not nested:
        return model
    layers: list[KerasLayer] = []
    inbound = dict(model.inbound)
    inputs, outputs = list(model.inputs), list(model.outputs)
    replaced: dict[str, str] = {}  # nested model -> the layer giving its output
    names = {layer.name for layer in model.layers}
    for layer in model.layers:
        inner = nested.get(layer.name)
        if inner is None:
            layers.append(layer)
            continue
        where = f"nested model '{layer.name}' ({layer.class_name})"
        if len(inner.outputs) != 1:
            raise UnsupportedError(
                f"{where} has {len(inner.outputs)} outputs; rtlgen inlines nested models of "
                "one output"
            )
        refs = inbound.pop(layer.name)
        if refs and len(refs) != len(inner.inputs):
            raise ModelFileError(
                f"{where} takes {len(inner.inputs)} inputs but is called with {len(refs)}"
            )
        feeds = dict(zip(inner.inputs, refs, strict=False))  # inner input -> outer tensor
        for sub in inner.layers:
            if sub.name in names:
                raise UnsupportedError(
                    f"{where}: its layer '{sub.name}' has the name of another layer of the "
                    "model; rtlgen needs distinct layer names"
                )
            names.add(sub.name)
            if sub.name in feeds and sub.class_name == "InputLayer":
                continue  # it reads the outer tensor instead
            own = inner.inbound[sub.name]
            if sub.name in feeds:  # a first layer without an InputLayer
                own = (feeds[sub.name],)
            inbound[sub.name] = tuple(feeds.get(ref, ref) for ref in own)
            layers.append(sub)
        out = inner.outputs[0]
        replaced[layer.name] = feeds.get(out, out)
        if layer.name in inputs:  # the model's first layer: its inputs are the model's
            at = inputs.index(layer.name)
            inputs[at : at + 1] = list(inner.inputs)
    inbound = {
        name: tuple(replaced.get(ref, ref) for ref in refs) for name, refs in inbound.items()
    }
    outputs = [replaced.get(name, name) for name in outputs]
    return KerasModel(
        model.name, tuple(layers), model.sequential, inbound, tuple(inputs), tuple(outputs)
    )


#: Keras 3 operations of a tensor and a constant read as a scale/shift
#: (`rtlgen.ops.scale_shift`): ``x + 3.0`` is ``ops.Add(x, 3.0)``
TENSOR_CONSTANT_OPS = ("ops.Add", "ops.Subtract", "ops.Multiply", "ops.TrueDivide", "ops.Divide")


def _with_operands(layer: KerasLayer, node: Any) -> KerasLayer:
    """A Keras 3 operation's node args (a tensor and a number, either order) kept in its
    config as ``operands``: the tensor as None, the number as it is."""
    args = node.get("args") if isinstance(node, dict) else None
    if not isinstance(args, list):
        return layer
    operands = [
        None if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__" else a
        for a in args
    ]
    return dataclasses.replace(layer, config={**layer.config, "operands": operands})


#: tf.keras 2 TFOpLambda functions read as `TENSOR_CONSTANT_OPS` when one operand is a number
_TF_OPS = {
    "__operators__.add": "Add",
    "math.add": "Add",
    "math.subtract": "Subtract",
    "math.multiply": "Multiply",
    "math.truediv": "TrueDivide",
    "math.divide": "TrueDivide",
}


def _tf_op_with_number(layer: KerasLayer, nodes: list[Any]) -> tuple[KerasLayer, list[Any]]:
    """A tf.keras 2 TFOpLambda of a tensor and a number (``x + 3.0``: ``[src, 0, 0, {"y":
    3.0}]``; ``2.0 - x``: ``["_CONSTANT_VALUE", -1, 2.0, {"y": [src, 0, 0]}]``) as the
    Keras 3 operation of the same kind, its node a plain reference of ``src``; any other
    TFOpLambda as it is (refused)."""
    op = _TF_OPS.get(str(layer.config.get("function")))
    node = nodes[0]
    if op is None or not isinstance(node, list) or len(node) != 4 or not isinstance(node[3], dict):
        return layer, nodes
    src, index, tensor, kwargs = node
    y = kwargs.get("y")
    number = (int, float)
    if isinstance(src, str) and src != "_CONSTANT_VALUE" and isinstance(y, number):
        operands, ref = [None, y], [src, index, tensor, {}]
    elif src == "_CONSTANT_VALUE" and isinstance(tensor, number) and isinstance(y, list):
        operands, ref = [tensor, None], [*y[:3], {}]
    else:
        return layer, nodes
    if isinstance(operands[0 if operands[1] is None else 1], bool):
        return layer, nodes
    config = {**layer.config, "operands": operands}
    return dataclasses.replace(layer, class_name=f"ops.{op}", config=config), [ref]


#: what a second output of a layer usually is
_EXTRA_OUTPUTS = " (an RNN's return_state states are extra outputs)"


def _tensor_refs(value: Any, nested: Collection[str] = ()) -> list[str]:
    """Layer names referenced by one inbound node (Keras 2 lists or Keras 3 dicts). A model
    used as a layer (``nested``) is referenced by the node of its call in this model, which
    need not be its first (Keras 2 numbers a nested model's own graph node 0)."""
    refs: list[str] = []
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                if history[0] in nested and history[2:3] in ([0], []):
                    refs.append(history[0])
                    return refs
                if any(h != 0 for h in history[1:3]):
                    raise UnsupportedError(
                        f"output {history[1:3]} of layer '{history[0]}' is used: rtlgen "
                        f"supports layers with one output, each called once{_EXTRA_OUTPUTS}"
                    )
                refs.append(history[0])
            return refs
        # Keras 3 node: {"args": [tensors...], "kwargs": {...}}; tensors are in the args.
        return _tensor_refs(value.get("args", []), nested)
    if isinstance(value, list):
        if (
            len(value) >= 3
            and isinstance(value[0], str)
            and all(isinstance(v, int) for v in value[1:3])
        ):
            if value[0] in nested and value[2] == 0:
                return [value[0]]
            if value[1] != 0 or value[2] != 0:
                raise UnsupportedError(
                    f"the output {value[2]} of call {value[1]} of layer '{value[0]}' is used: "
                    f"rtlgen supports layers with one output, each called once{_EXTRA_OUTPUTS}"
                )
            return [value[0]]  # Keras 2: [layer_name, node_index, tensor_index(, kwargs)]
        for item in value:
            refs.extend(_tensor_refs(item, nested))
    return refs


def _keyword_tensors(node: Any) -> list[tuple[str, str]]:
    """(keyword, layer name) of the tensors one inbound node passes as keyword arguments:
    Keras 2 ``[name, node, tensor, {"y": [name, 0, 0]}]`` (``x + y`` as a TFOpLambda, an
    RNN's ``initial_state``), Keras 3 ``{"kwargs": {"key": __keras_tensor__}}``. `_tensor_refs`
    reads the positional inputs only."""

    def refs(value: Any) -> list[str]:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                history = value.get("config", {}).get("keras_history")
                ok = isinstance(history, list) and history and isinstance(history[0], str)
                return [history[0]] if ok else []
            return [r for v in value.values() for r in refs(v)]
        if isinstance(value, list):
            if len(value) >= 3 and isinstance(value[0], str) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value[1:3]
            ):
                return [value[0]]
            return [r for v in value for r in refs(v)]
        return []

    found: list[tuple[str, str]] = []
    kwargs_list: list[Any] = []
    if isinstance(node, dict):  # Keras 3
        kwargs_list.append(node.get("kwargs"))
    elif isinstance(node, list):
        # Keras 2: a list of [name, node, tensor(, kwargs)], or one such (a TFOpLambda's)
        items = [node] if node and isinstance(node[0], str) else node
        kwargs_list.extend(
            item[3] for item in items if isinstance(item, list) and len(item) >= 4
        )
    for kwargs in kwargs_list:
        if isinstance(kwargs, dict):
            found.extend((str(key), ref) for key, value in kwargs.items() for ref in refs(value))
    return found


def _io_names(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ModelFileError(f"Functional config: '{what}' is missing or empty")
    if isinstance(value[0], str):
        return [value[0]]
    names = []
    for item in value:
        if not isinstance(item, list) or not item or not isinstance(item[0], str):
            raise ModelFileError(f"Functional config: malformed '{what}' entry {item!r}")
        names.append(item[0])
    return names


def _functional_graph(
    name: str,
    config: Mapping[str, Any],
    keras3: bool,
    scope: tuple[str, ...] = (),
    prefix: str = "layers",
) -> KerasModel:
    layers: dict[str, KerasLayer] = {}
    inbound: dict[str, tuple[str, ...]] = {}
    entries = config["layers"]
    read = _archive_paths(
        [_layer_entry(entry, index, keras3, scope) for index, entry in enumerate(entries)],
        False,
        prefix,
    )
    nested_names = {layer.name for layer in read if layer.class_name in _NESTED_MODELS}
    for entry, layer in zip(entries, read, strict=True):
        if layer.name in layers:
            raise ModelFileError(f"two layers named '{layer.name}'")
        layers[layer.name] = layer
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ModelFileError(f"{layer.where}: 'inbound_nodes' is not a list")
        if len(nodes) > 1:
            raise UnsupportedError(
                f"{layer.where} is called {len(nodes)} times (a shared layer); rtlgen supports "
                "graphs in which every layer is applied once"
            )
        if layer.class_name == "TFOpLambda" and nodes:
            layer, nodes = _tf_op_with_number(layer, nodes)
            layers[layer.name] = layer
        try:
            inbound[layer.name] = tuple(_tensor_refs(nodes[0], nested_names)) if nodes else ()
        except UnsupportedError as exc:
            raise UnsupportedError(f"{layer.where}: {exc}") from None
        if layer.class_name in TENSOR_CONSTANT_OPS and nodes:
            layer = _with_operands(layer, nodes[0])
            layers[layer.name] = layer
        keyword = _keyword_tensors(nodes[0]) if nodes else []
        if keyword:
            if layer.class_name not in supported_layers():
                raise _unsupported_layer(layer)
            key, ref = keyword[0]
            raise UnsupportedError(
                f"{layer.where}: the tensor of layer '{ref}' passed as keyword argument "
                f"'{key}' is not supported (rtlgen reads layers applied to their input "
                "tensors only)"
            )
        if len(inbound[layer.name]) > 64:
            raise ModelFileError(f"{layer.where}: more than 64 inputs")
    inputs = tuple(_io_names(config.get("input_layers"), "input_layers"))
    outputs = tuple(_io_names(config.get("output_layers"), "output_layers"))
    for what, names in (("input", inputs), ("output", outputs)):
        for io in names:
            if io not in layers:
                raise ModelFileError(f"Functional config: {what} layer '{io}' is not a layer")
    for layer_name, refs in inbound.items():
        for ref in refs:
            if ref not in layers:
                raise ModelFileError(
                    f"layer '{layer_name}' takes its input from unknown layer '{ref}'"
                )
    for io in inputs:
        if inbound[io]:
            raise ModelFileError(f"Functional config: input layer '{io}' has inputs")
    # Every layer must lie on a path from an input to an output: walk back from the
    # outputs (cycles found on the way), then check the inputs reached are model inputs.
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the walk, 2: done
    for out in outputs:
        stack: list[tuple[str, int]] = [(out, 0)]
        while stack:
            current, next_ref = stack.pop()
            if next_ref == 0:
                if state.get(current) == 2:
                    continue
                state[current] = 1
            refs = inbound[current]
            if next_ref < len(refs):
                stack.append((current, next_ref + 1))
                ref = refs[next_ref]
                if state.get(ref) == 1:
                    raise ModelFileError(f"Functional config has a cycle through layer '{ref}'")
                if state.get(ref) != 2:
                    stack.append((ref, 0))
            else:
                state[current] = 2
                order.append(current)
    for layer_name in order:
        if not inbound[layer_name] and layer_name not in inputs:
            raise UnsupportedError(
                f"{layers[layer_name].where} has no inputs but is not a model input"
            )
    stray = [n for n in layers if n not in state]
    if stray:
        raise UnsupportedError(
            f"layers {', '.join(stray)} do not lead to a model output; rtlgen converts graphs "
            "whose every layer feeds an output"
        )
    unused = [n for n in inputs if n not in state]
    if unused:
        raise UnsupportedError(f"model inputs {', '.join(unused)} feed no output")
    # config order is kept when it is topological (it is in every file Keras writes);
    # otherwise the walk's order
    position = {n: i for i, n in enumerate(layers)}
    topological = all(position[r] < position[n] for n in layers for r in inbound[n])
    ordered = list(layers) if topological else order
    model = KerasModel(
        name,
        tuple(layers[n] for n in ordered),
        False,
        inbound,
        inputs,
        outputs,
    )
    return _inline_nested(model, _nested(entries, read, keras3))


def _shape_from(layer: KerasLayer) -> Shape | None:
    cfg = layer.config
    for key in ("batch_input_shape", "batch_shape"):
        if isinstance(cfg.get(key), list):
            return _input_shape(layer, cfg[key][1:])
    if isinstance(cfg.get("input_shape"), list):
        return _input_shape(layer, cfg["input_shape"])
    build = layer.build_config or cfg.get("build_config")
    if isinstance(build, dict) and isinstance(build.get("input_shape"), list):
        return _input_shape(layer, build["input_shape"][1:])
    return None


def _input_shape(layer: KerasLayer, dims: Sequence[Any]) -> Shape:
    if any(d is None for d in dims):
        raise UnsupportedError(
            f"{layer.where}: input shape {tuple(dims)} has unknown dimensions; rtlgen needs a fixed "
            "input shape (set it with InputLayer/input_shape)"
        )
    shape = tuple(config_int(layer, "input shape", d) for d in dims)
    if not 1 <= len(shape) <= 3:
        raise UnsupportedError(
            f"{layer.where}: input shape {shape} is not supported (supported: vectors (N,), "
            "1D signals (L, C), images (H, W, C))"
        )
    return shape


# ---------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------
Stored = np.ndarray | StoredArray  # a weight in memory, or a dataset not read yet


class WeightSource:
    """Weights of a layer by short name (``kernel``, ``bias``, ``gamma`` ...), as arrays or
    as datasets not read yet; ``expected`` maps the names to the shapes the config implies."""

    def get(self, layer: KerasLayer, expected: Mapping[str, Shape]) -> dict[str, Stored]:
        raise NotImplementedError

    def sublayer_variables(self, layer: KerasLayer, sub: str) -> list[Stored]:
        """The variables of the sub-layer ``sub`` of ``layer`` (``iq/quantizer``), in the
        order Keras 3 saves them (only the ``.keras`` / ``.weights.h5`` layout has them)."""
        raise ModelFileError(
            f"{layer.where}: its quantizer variables are read from a Keras 3 .keras archive or "
            "a save_weights('*.weights.h5') file only"
        )


class BudgetedWeights(WeightSource):
    """A weight source that counts the parameters the config declares, layer by layer, and
    the bytes they take in the file, and refuses the model once they exceed
    ``limits.max_parameters`` or ``limits.max_bytes``: before a single weight of that layer
    is read or allocated."""

    def __init__(self, inner: WeightSource, limits: Limits):
        self.inner, self.limits = inner, limits
        self.parameters = self.bytes = 0

    def get(self, layer: KerasLayer, expected: Mapping[str, Shape]) -> dict[str, Stored]:
        self.parameters += sum(element_count(shape) for shape in expected.values())
        check_parameters(self.parameters, self.limits, layer.where)
        got = self.inner.get(layer, expected)
        for name, stored in got.items():
            if isinstance(stored, StoredArray) and name in expected:
                self.bytes += element_count(expected[name]) * stored.itemsize
        check_bytes(self.bytes, self.limits, f"{layer.where}: weights read so far")
        return got

    def sublayer_variables(self, layer: KerasLayer, sub: str) -> list[Stored]:
        got = self.inner.sublayer_variables(layer, sub)
        for stored in got:
            self.parameters += element_count(tuple(stored.shape))
            if isinstance(stored, StoredArray):
                self.bytes += element_count(tuple(stored.shape)) * stored.itemsize
        check_parameters(self.parameters, self.limits, layer.where)
        check_bytes(self.bytes, self.limits, f"{layer.where}: weights read so far")
        return got


#: weights Keras 3's HDF5 files name otherwise than Keras 2's: class -> {Keras 2: Keras 3}
_KERAS3_H5_NAMES = {
    "DepthwiseConv1D": {"depthwise_kernel": "kernel"},
    "DepthwiseConv2D": {"depthwise_kernel": "kernel"},
}


class NamedWeights(WeightSource):
    """Weights stored with names (Keras 2 HDF5, in-memory models)."""

    def __init__(self, by_layer: Mapping[str, Mapping[str, Stored]], origin: str):
        self.by_layer, self.origin = by_layer, origin

    def get(self, layer: KerasLayer, expected: Mapping[str, Shape]) -> dict[str, Stored]:
        nested = getattr(self.by_layer, "nested", None)
        if layer.scope and nested is not None:
            # a Keras 2 file keeps a nested model's layers' weights in the outermost nested
            # model's group, named "<layer>/<weight>:0"
            found = nested(layer.scope[0], layer.name)
            if expected and not found:
                raise ModelFileError(
                    f"{self.origin}: no weights for {layer.where} in nested model "
                    f"'{layer.scope[0]}'"
                )
        elif layer.name not in self.by_layer or (expected and not self.by_layer[layer.name]):
            raise ModelFileError(
                f"{self.origin}: no weights for {layer.where} (weights were found for: "
                f"{self._layers_with_weights() or 'no layer'})"
            )
        else:
            found = self.by_layer[layer.name]
        renamed = _KERAS3_H5_NAMES.get(layer.class_name, {})
        found = {
            **{
                name: found[old]
                for name, old in renamed.items()
                if name not in found and old in found
            },
            **found,
        }
        missing = [name for name in expected if name not in found]
        if missing:
            raise ModelFileError(
                f"{self.origin}: {layer.where} has no weight(s) {', '.join(missing)} "
                f"(found: {', '.join(found) or 'none'})"
            )
        return {name: found[name] for name in expected}

    def _layers_with_weights(self, shown: int = 20) -> str:
        # A file may list millions of layers: look at a bounded number of them.
        names: list[str] = []
        for index, name in enumerate(self.by_layer):
            if len(names) == shown or index >= 20 * shown:
                return ", ".join(names) + ", ..."
            if self.by_layer[name]:
                names.append(name)
        return ", ".join(names)


def _snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: ``QConv2D`` -> ``q_conv2d``, ``BatchNormalization`` ->
    ``batch_normalization``."""
    intermediate = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    insecure = re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
    return insecure if insecure[0] != "_" else "private" + insecure


class IndexedWeights(WeightSource):
    """Weights of a ``.keras`` archive: ``layers/<snake class>[_N]/vars/<i>`` in creation order
    (a recurrent layer's in its cell: ``layers/lstm/cell/vars/<i>``)."""

    def __init__(
        self,
        variables: Any,  # .get(path, default) -> list of variables (hdf5.IndexedVariables)
        layers: Sequence[KerasLayer],
        origin: str,
    ):
        self.variables, self.origin = variables, origin
        # numbered per class within each model's layer list (`_archive_paths`)
        self.paths = {layer.name: layer.archive_path for layer in layers if layer.archive_path}

    def get(self, layer: KerasLayer, expected: Mapping[str, Shape]) -> dict[str, Stored]:
        path = self.paths.get(layer.name, "")
        if layer.class_name in _FOLDED_LAYERS:
            # kernel, bias, iteration in the layer; gamma, beta, mean, variance in its
            # "batchnorm" sub-layer (creation order, trainable first, in each).
            main = [
                "depthwise_kernel" if layer.class_name == "QDepthwiseConv2DBatchnorm" else "kernel",
                *(["bias"] if layer.config.get("use_bias", True) else []),
                "iteration",
            ]
            bn = [
                *(["gamma"] if layer.config.get("scale", True) else []),
                *(["beta"] if layer.config.get("center", True) else []),
                "moving_mean",
                "moving_variance",
            ]
            named = {
                **self._named(layer, path, main),
                **self._named(layer, f"{path}/batchnorm", bn),
            }
            return {name: named[name] for name in expected}
        if layer.class_name in _CELL_LAYERS:
            return self._named(layer, f"{path}/cell", list(expected))
        return self._named(layer, path, list(expected))

    def sublayer_variables(self, layer: KerasLayer, sub: str) -> list[Stored]:
        path = self.paths.get(layer.name, "")
        return list(self.variables.get(f"{path}/{sub}" if sub else path, []))

    def _named(self, layer: KerasLayer, path: str, names: list[str]) -> dict[str, Stored]:
        arrays = self.variables.get(path, [])
        if len(arrays) != len(names):
            raise ModelFileError(
                f"{self.origin}: {layer.where} expects {len(names)} weight(s) "
                f"({', '.join(names)}) but '{path}' holds {len(arrays)}"
            )
        return dict(zip(names, arrays, strict=True))


def layer_weights(
    source: WeightSource, layer: KerasLayer, expected: dict[str, Shape]
) -> dict[str, np.ndarray]:
    """The layer's weights, each checked against the shape the config implies before it is
    read (a dataset's declared shape), then for NaN/infinity."""
    got = source.get(layer, expected)
    limits = source_limits(source)
    out = {}
    for name, shape in expected.items():
        stored = got[name]
        if tuple(stored.shape) != tuple(shape):
            raise ModelFileError(
                f"{layer.where}: weight '{name}' has shape {tuple(stored.shape)} in the weights file, "
                f"but the config implies {tuple(shape)}"
            )
        value = stored.read(limits) if isinstance(stored, StoredArray) else np.asarray(stored)
        if value.dtype.kind not in "fiub":
            raise ModelFileError(
                f"{layer.where}: weight '{name}' has dtype {value.dtype}, expected real numbers"
            )
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ModelFileError(f"{layer.where}: weight '{name}' contains NaN or infinity")
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------
# activations and quantizers
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActivationSpec:
    """A layer's activation. ``clamp``/``quantizer``/``softmax`` fit in the layer's own node;
    a ``table`` (`rtlgen.ops.lut_activation`: the kind and its options) or a leaky ReLU
    (``negative_slope``, rounded into ``leaky_quantizer`` if QKeras's, `rtlgen.ops.leaky_relu`)
    is a node of its own after the layer (``separate``)."""

    clamp: ir.Clamp = ir.LINEAR
    quantizer: Quantizer | None = None
    softmax: bool = False
    table: ActivationKind | None = None
    table_options: tuple[tuple[str, Any], ...] = ()
    negative_slope: float | None = None
    leaky_quantizer: Quantizer | None = None

    @property
    def separate(self) -> bool:
        return self.table is not None or self.negative_slope is not None

    @property
    def identity(self) -> bool:
        return (
            self.clamp.is_linear
            and self.quantizer is None
            and not self.softmax
            and not self.separate
        )


#: QKeras's own sigmoids (qkeras.quantizers.hard_sigmoid / smooth_sigmoid), by slope
_QKERAS_SIGMOIDS = {"hard_sigmoid": Fraction(1, 2), "smooth_sigmoid": Fraction(3, 16)}


def _qkeras_layer(layer: KerasLayer) -> bool:
    """A QKeras layer (Keras 2, whose dtype is a string; HGQ2's Keras 3 layers have dicts)."""
    return layer.class_name.startswith("Q") and not is_keras3_layer(layer)


def layer_activation(layer: KerasLayer, spec: Any) -> ActivationSpec:
    where = f"{layer.where} activation"
    if spec is None:
        return ActivationSpec()
    if is_quantizer_spec(spec):
        q = parse_layer_quantizer(spec, where)
        assert q is not None
        if isinstance(q, TableQuantizer):
            return ActivationSpec(table=q.kind, table_options=q.options)
        if isinstance(q, QuantizedLeakyRelu):
            return ActivationSpec(negative_slope=q.negative_slope, leaky_quantizer=q)
        if isinstance(q, QuantizedReluPo2):  # 0 or powers of two: a table (exact)
            options = (
                ("bits", q.bits),
                ("max_value", q.max_value),
                ("quadratic_approximation", q.quadratic_approximation),
                ("log2_rounding", q.log2_rounding),
            )
            return ActivationSpec(table=ActivationKind.QUANTIZED_RELU_PO2, table_options=options)
        if is_step_activation(q):  # sign, binary, ternary: a threshold node (rtlgen.ops.threshold)
            refuse_data_dependent(q, where)
            return ActivationSpec(quantizer=q)
        try:
            q.output_type()  # rejects quantizers that cannot be an activation, with the reason
        except UnsupportedError as exc:
            raise UnsupportedError(f"{where}: {exc}") from None
        return ActivationSpec(quantizer=q)
    name = spec
    if isinstance(spec, dict) and spec.get("class_name") == "function":
        name = spec.get("config")  # a plain function Keras does not know, saved by its name
    elif isinstance(spec, dict):  # {"class_name": "relu", "config": {}} (some Keras versions)
        name = spec.get("class_name") if not spec.get("config") else None
    if not isinstance(name, str):
        raise UnsupportedError(
            f"{where}: {spec!r} is not supported (supported: {_KERAS_ACTIVATIONS})"
        )
    name = name.strip()
    if name in ("linear", ""):
        return ActivationSpec()
    if name == "relu":
        return ActivationSpec(ir.RELU)
    if name == "relu6":
        return ActivationSpec(ir.Clamp(0.0, 6.0))
    if name == "hard_tanh":  # QKeras: 2 * clip(0.5 x + 0.5, 0, 1) - 1 = clip(x, -1, 1)
        return ActivationSpec(ir.Clamp(-1.0, 1.0))
    if name == "softmax":
        return ActivationSpec(softmax=True)
    if name == "leaky_relu":  # tf.nn.leaky_relu / Keras 3: slope 0.2
        return ActivationSpec(negative_slope=0.2)
    if name in _QKERAS_SIGMOIDS and _qkeras_layer(layer):
        # QKeras layers look names up in qkeras.quantizers first (get_quantizer), where
        # these are its own: clip(slope * x + 0.5, 0, 1)
        slope = (("slope", _QKERAS_SIGMOIDS[name]),)
        return ActivationSpec(table=ActivationKind.HARD_SIGMOID, table_options=slope)
    if name == "hard_sigmoid" and is_keras3_layer(layer):
        # Keras 3: relu6(x + 3) / 6, slope 1/6 instead of Keras 2's 0.2
        slope = (("slope", Fraction(1, 6)),)
        return ActivationSpec(table=ActivationKind.HARD_SIGMOID, table_options=slope)
    name = _TABLE_ALIASES.get(name, name)
    if name in _TABLE_NAMES:
        # "gelu": Keras 2.15's and 3's activations.gelu default, approximate=False (erf)
        return ActivationSpec(table=ActivationKind(name))
    raise UnsupportedError(f"{where}: '{name}' is not supported (supported: {_KERAS_ACTIVATIONS})")


#: Largest |bits| / |integer| of a quantizer rtlgen accepts: values are int64 mantissas.
MAX_QUANTIZER_BITS = 64


def parse_layer_quantizer(spec: Any, where: str) -> Quantizer | None:
    """`parse_quantizer` with every complaint naming the layer and key, and integer
    arguments bounded (``integer=1e300`` would otherwise become a 300-digit exponent)."""
    try:
        q = parse_quantizer(spec, where)
    except OverflowError:
        text = " ".join(repr(spec).split())
        raise ModelFileError(f"{where}: {text[:80]} has a number out of range") from None
    except RtlgenError as exc:
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from None
    for field in ("bits", "integer"):
        value = getattr(q, field, 0)
        if isinstance(value, int) and abs(value) > MAX_QUANTIZER_BITS:
            raise UnsupportedError(
                f"{where}: {field}={value} is out of range (supported: -{MAX_QUANTIZER_BITS}.."
                f"{MAX_QUANTIZER_BITS})"
            )
    return q


def layer_quantizer(layer: KerasLayer, key: str, kernel: bool = False) -> Quantizer | None:
    q = parse_layer_quantizer(layer.config.get(key), f"{layer.where} {key}")
    if q is not None and kernel:
        q = q.for_kernel()  # what QKeras applies: alpha=None kernels become "auto_po2"
    return q


# ---------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------
def _window(
    layer: KerasLayer, size: int, k: int, stride: int, padding: str
) -> tuple[int, int, int]:
    """(output size, pad before, pad after) along one axis, exactly as TensorFlow."""
    if padding == "valid":
        if size < k:
            raise RtlgenError(
                f"{layer.where}: window {k} is larger than the input size {size} (padding='valid')"
            )
        return (size - k) // stride + 1, 0, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        return out, total // 2, total - total // 2  # the extra row/column goes at the bottom/right
    if padding == "causal":
        return (size - 1) // stride + 1, k - 1, 0
    raise UnsupportedError(
        f"{layer.where}: padding={padding!r} (supported: 'valid', 'same', and 'causal' for Conv1D)"
    )


def window_geometry(
    layer: KerasLayer,
    in_shape: Shape,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: str,
    causal_ok: bool,
) -> tuple[Shape, tuple[int, int, int, int]]:
    """Spatial output shape (without channels) and (top, bottom, left, right) padding."""
    if padding == "causal" and not causal_ok:
        raise UnsupportedError(f"{layer.where}: padding='causal' is only supported for Conv1D")
    if len(in_shape) == 2:  # 1D: (L, C) as an image of height 1
        length, top, bottom = _window(layer, in_shape[0], kernel[1], stride[1], padding)
        return (length,), (0, 0, top, bottom)
    rows, top, bottom = _window(layer, in_shape[0], kernel[0], stride[0], padding)
    cols, left, right = _window(layer, in_shape[1], kernel[1], stride[1], padding)
    return (rows, cols), (top, bottom, left, right)


def expect_rank(layer: KerasLayer, shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        raise UnsupportedError(f"{layer.where}: input shape {shape} is not {what}")


def check_conv_input(
    layer: KerasLayer, shape: Shape, dims: int, dilation_ok: bool = False
) -> None:
    """What every 1D/2D convolution layer needs: a (L, C) or (H, W, C) input, channels_last
    data and a dilation rate of 1 (unless the layer reads it: ``dilation_ok``)."""
    expect_rank(layer, shape, dims + 1, "a 1D signal (L, C)" if dims == 1 else "an image (H, W, C)")
    check_channels_last(layer)
    if not dilation_ok and any(d != 1 for d in config_ints(layer, "dilation_rate", dims, 1)):
        raise UnsupportedError(
            f"{layer.where}: dilation_rate={layer.config['dilation_rate']} is not supported (only 1)"
        )


# ---------------------------------------------------------------------------------------
# layer handlers: (layer, input shape, weights) -> nodes, output shape, activation flags
# ---------------------------------------------------------------------------------------
@dataclass
class LayerOut:
    nodes: list[ir.Node]
    shape: Shape
    softmax: bool = False
    #: nodes applied to each input before ``nodes`` (a merge's per-input quantizers, HGQ2)
    input_nodes: tuple[list[ir.Node], ...] = ()


def folded_batchnorm(
    layer: KerasLayer,
    source: WeightSource,
    expected: dict[str, Shape],
    units: int,
    kernel_key: str = "kernel",
) -> tuple[np.ndarray, np.ndarray]:
    """QConv2DBatchnorm/QDenseBatchnorm/QDepthwiseConv2DBatchnorm folded kernel and bias,
    computed in float32 exactly as QKeras's ``call`` does at inference
    (``ema_stats_folding`` and ``batch_stats_folding`` both use the moving statistics there)::

        inv = rsqrt(moving_variance + eps) * gamma
        kernel' = inv * kernel;  bias' = inv * (bias - moving_mean) + beta

    ``inv`` is reshaped to the kernel's last axes (a depthwise kernel (kh, kw, C, M) takes it
    as (C, M), output channel ``c * M + m``, as QKeras reshapes it).

    TensorFlow's float32 ``rsqrt`` is not correctly rounded and numpy's ``1/sqrt`` is, so
    ``inv`` can differ in its last bit; a folded weight then quantizes differently only if
    it lies within ~1e-7 (relative) of a rounding boundary of the kernel quantizer.
    """
    check_bn_axis_last(layer, 2 if layer.class_name == "QDenseBatchnorm" else 4)
    kernel_shape = expected[kernel_key]
    inv_shape = kernel_shape[2:] if kernel_key == "depthwise_kernel" else (units,)
    center, scale = config_bool(layer, "center", True), config_bool(layer, "scale", True)
    bn = {"moving_mean": (units,), "moving_variance": (units,)}
    if scale:
        bn["gamma"] = (units,)
    if center:
        bn["beta"] = (units,)
    got = layer_weights(source, layer, {**expected, **bn})
    f32 = np.float32
    eps = f32(config_number(layer, "epsilon", 1e-3))
    kernel = got[kernel_key].astype(f32)
    bias = got["bias"].astype(f32) if "bias" in got else f32(0)
    inv = f32(1.0) / np.sqrt(got["moving_variance"].astype(f32) + eps)
    if scale:
        inv = inv * got["gamma"].astype(f32)
    beta = got["beta"].astype(f32) if center else f32(0)
    folded_bias = inv * (bias - got["moving_mean"].astype(f32)) + beta
    return inv.reshape(inv_shape) * kernel, np.broadcast_to(folded_bias, (units,)).copy()


def check_bn_axis_last(layer: KerasLayer, rank_with_batch: int) -> None:
    axis = layer.config.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    if len(axes) != 1 or not isinstance(axes[0], int) or axes[0] not in (-1, rank_with_batch - 1):
        raise UnsupportedError(
            f"{layer.where}: axis={axis} is not supported (only the last, channels axis)"
        )


# ---------------------------------------------------------------------------------------
_MAX_CONFIG_NUMBER = 2**63


def _check_dtype_policy(layer: KerasLayer) -> None:
    """Keras 3 writes each layer's dtype policy as a dict (3.0-3.3: its name, a string):
    float policies are read (rtlgen's arithmetic is exact fixed point either way); a
    quantized one (``model.quantize("int8")``: integer kernels with float scales; named
    ``int8_from_float32`` and the like) is refused in one line."""
    dtype = layer.config.get("dtype")
    if isinstance(dtype, str) and "_from_" in dtype:
        raise UnsupportedError(
            f"{layer.where}: dtype policy {dtype!s:.40} is not supported: Keras 3 post-training "
            "quantization (model.quantize) keeps float scales; save the float model, or "
            "quantize it with QKeras or HGQ2"
        )
    if isinstance(dtype, dict) and dtype.get("class_name") not in (
        None,
        "DTypePolicy",
        "FloatDTypePolicy",  # Keras 3.0 - 3.3
    ):
        config = dtype.get("config")
        mode = config.get("mode", config.get("name")) if isinstance(config, dict) else None
        raise UnsupportedError(
            f"{layer.where}: dtype policy {dtype.get('class_name')!s:.40} ({mode!s:.20}) is not "
            "supported: Keras 3 post-training quantization (model.quantize) keeps float scales; "
            "save the float model, or quantize it with QKeras or HGQ2"
        )


def _check_numbers(layer: KerasLayer) -> None:
    """Refuse NaN/infinity and absurd magnitudes anywhere in a layer's config, naming the
    key: no Keras config holds one, and each would surface later as a crash, a 300-digit
    size or a silently wrong bound."""
    stack: list[tuple[str, Any]] = [(key, value) for key, value in layer.config.items()]
    while stack:
        key, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            if key.endswith(".i_decay_speed") and layer.class_name.startswith("hgq>"):
                continue  # HGQ2 writes Infinity there (no decay); a training-only setting
            raise ModelFileError(f"{layer.where}: '{key}' = {value!r} is not a finite number")
        if isinstance(value, int | float) and abs(value) > _MAX_CONFIG_NUMBER:
            raise ModelFileError(
                f"{layer.where}: '{key}' = {value:.3g} is out of range (supported: magnitudes "
                "up to 2**63)"
            )
        if isinstance(value, dict):
            stack.extend((f"{key}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(value))


def _check_activations(layer: KerasLayer, shape: Shape, limits: Limits) -> None:
    """Refuse a feature map larger than ``limits.max_activations`` elements."""
    size = element_count(shape)
    if size > limits.max_activations:
        raise ModelFileError(
            f"{layer.where}: its output shape {shape} has {size:,} elements, more than the "
            f"limit of {limits.max_activations:,} per feature map"
        )


def _check_operations(layer: KerasLayer, node: ir.Node, limits: Limits) -> None:
    """Refuse a layer doing more than ``limits.max_operations`` multiplies (or window
    comparisons) per sample: a 'same' window far larger than its input, or a conv whose
    few weights slide over a huge map, would make the reference and the hardware huge."""
    if isinstance(node, ir.Conv):
        window: Shape = node.kernel
        count = element_count(node.out_shape[:-1]) * element_count(node.weights.shape)
    elif isinstance(node, ir.Pool):
        window = node.pool
        count = element_count(node.out_shape) * element_count(node.pool)
    else:
        return
    check_operation_count(layer, count, node.out_shape, window, limits)


def check_operation_count(
    layer: KerasLayer, count: int, out_shape: Shape, window: Shape, limits: Limits
) -> None:
    if count > limits.max_operations:
        raise ModelFileError(
            f"{layer.where}: {count:,} operations per sample (output {out_shape}, window "
            f"{window}), more than the limit of {limits.max_operations:,}"
        )


def source_limits(source: WeightSource) -> Limits:
    return source.limits if isinstance(source, BudgetedWeights) else DEFAULT_LIMITS


def _name_outputs_after_their_layers(
    nodes: list[ir.Node], output_layers: tuple[str, ...], produced: dict[str, tuple[str, Shape]]
) -> list[ir.Node]:
    """An output layer that built no node of its own (a Dropout, a linear Activation, a
    softmax marker) ends the ``source`` of the node whose result it passes on, so that the
    output is named after it as Keras names the output (`rtlgen.plan.output_names` takes the
    last layer of an output node's source)."""
    rename: dict[str, str] = {}
    for layer in output_layers:
        node_name = produced[layer][0]
        if node_name != layer:
            rename[node_name] = layer
    out = []
    for node in nodes:
        layer = rename.get(node.name)
        if layer is not None and not isinstance(node, ir.Input):
            if node.source.split("+")[-1] != layer:
                node = node.replace(source=f"{node.source}+{layer}" if node.source else layer)
        out.append(node)
    return out


def build_graph(
    model_config: Mapping[str, Any],
    weights: WeightSource | Callable[[list[KerasLayer]], WeightSource],
    source: str = "",
    limits: Limits = DEFAULT_LIMITS,
    keras_version: str | None = None,
) -> ir.ModelGraph:
    """The unlowered graph of a Keras model config with its weights (``keras_version``: the
    version the file declares, if any; `written_by_keras3`).

    Each layer is read by the front-end handler of the op registered for its class name
    (`rtlgen.ops`).

    ``weights`` may be a factory called with the chain's layers (for ``.keras`` archives,
    whose weights are addressed by layer position). Shapes, parameters and numbers of the
    config are checked against ``limits`` layer by layer, before that layer's weights are read.
    """
    from rtlgen.ops.registry import keras_handler, keras_op

    check_depth(model_config, limits, source or "model config")
    model = model_layers(model_config, written_by_keras3(model_config, keras_version))
    layers = list(model.layers)
    if not layers:
        raise ModelFileError("the model has no layers")
    for layer in layers:
        if keras_handler(layer.class_name) is None and layer.class_name != "InputLayer":
            raise _unsupported_layer(layer)
        _check_numbers(layer)
        _check_dtype_policy(layer)
    if not isinstance(weights, WeightSource):
        weights = weights(layers)
    weights = BudgetedWeights(weights, limits)
    inbound = dict(model.inbound)
    # layer name -> (name of the node holding its result, its shape)
    produced: dict[str, tuple[str, Shape]] = {}
    nodes: list[ir.Node] = []
    first = layers[0]
    if model.sequential and first.class_name != "InputLayer":
        shape = _shape_from(first)
        if shape is None:
            raise ModelFileError(
                f"the model config does not give the input shape (no InputLayer and no "
                f"batch_input_shape on {first.where})"
            )
        _check_activations(first, shape, limits)
        input_name = f"{first.name}_input"
        nodes.append(ir.Input(input_name, shape, shape, source=input_name))
        produced[_SEQUENTIAL_INPUT] = (input_name, shape)
        inbound[first.name] = (_SEQUENTIAL_INPUT,)
    softmax_of: dict[str, KerasLayer] = {}  # layer -> the softmax layer its result comes from
    for layer in layers:
        if layer.class_name == "InputLayer":
            if (
                model.sequential
                and layer is not first
                or (not model.sequential and layer.name not in model.inputs)
            ):
                raise UnsupportedError(
                    f"{layer.where}: an InputLayer inside the model is not supported"
                )
            shape = _shape_from(layer)
            if shape is None:
                raise ModelFileError(f"{layer.where}: the input shape is not given")
            _check_activations(layer, shape, limits)
            nodes.append(ir.Input(layer.name, shape, shape, source=layer.name))
            produced[layer.name] = (layer.name, shape)
            continue
        refs = inbound[layer.name]
        if not refs:
            raise UnsupportedError(f"{layer.where} has no input")
        sources = [produced[ref] for ref in refs]
        op = keras_op(layer.class_name)
        if len(refs) > 1 and not op.multi_input:
            raise UnsupportedError(
                f"{layer.where} takes {len(refs)} inputs; a {layer.class_name} takes one"
            )
        shapes = tuple(shape for _, shape in sources)
        out = op.from_keras(layer, shapes if op.multi_input else shapes[0], weights)
        _check_activations(layer, out.shape, limits)
        for node in out.nodes:
            _check_operations(layer, node, limits)
        softmax = next((softmax_of[r] for r in refs if r in softmax_of), None)
        if softmax is not None:
            if out.nodes or out.softmax:
                raise UnsupportedError(
                    f"{softmax.where}: softmax is only supported as the last layer of the model "
                    f"(it is followed by {layer.where})"
                )
            softmax_of[layer.name] = softmax
        if out.softmax:
            softmax_of[layer.name] = layer
        if out.input_nodes:
            chained = []
            for (name, shape), chain in zip(sources, out.input_nodes, strict=True):
                for node in chain:
                    nodes.append(node.replace(inputs=(name,)))
                    name = node.name
                chained.append((name, shape))
            sources = chained
        inputs = tuple(name for name, _ in sources)
        for node in out.nodes:
            nodes.append(node.replace(inputs=inputs))
            inputs = (node.name,)
        if out.nodes:
            produced[layer.name] = (out.nodes[-1].name, out.shape)
        else:
            if len(sources) != 1:
                raise UnsupportedError(f"{layer.where}: takes {len(sources)} inputs")
            produced[layer.name] = sources[0]
    nodes = _name_outputs_after_their_layers(nodes, model.outputs, produced)
    outputs = tuple(produced[name][0] for name in model.outputs)
    softmax_outputs = tuple(produced[name][0] for name in model.outputs if name in softmax_of)
    if len(set(outputs)) != len(outputs):
        raise UnsupportedError(
            f"model outputs {', '.join(model.outputs)} are the same tensor; rtlgen needs "
            "distinct outputs"
        )
    # the Inputs first, in the model's input order (``input_layers``): the order of the
    # input ports and of the arrays a multi-input model takes
    order = {name: k for k, name in enumerate(model.inputs)}
    inputs_first = sorted(
        (n for n in nodes if isinstance(n, ir.Input)), key=lambda n: order.get(n.name, 0)
    )
    nodes = [*inputs_first, *(n for n in nodes if not isinstance(n, ir.Input))]
    graph = ir.ModelGraph(
        model.name, tuple(nodes), source=source, outputs=outputs, softmax_outputs=softmax_outputs
    )
    from .hgq1 import exact_proxy_weights, is_proxy_model  # HGQ v1: weights already quantized

    return exact_proxy_weights(graph) if is_proxy_model(layers) else graph
