"""Small Keras/QKeras test models and every file layout users have them in.

Reusable by any test: ``from tests.models import build, MODELS, save_layouts, ...``.

- `MODELS`: name -> builder ``(seed) -> tf.keras.Model`` of varied small networks (QKeras
  conv1d/conv2d/dense with string and dict quantizers, BatchNorm right after the input,
  after a conv (float: folded), after a max pool in a QKeras model, Activation/ReLU/Softmax
  layers, Dropout, same/valid padding with odd sizes and stride 2, 1D/2D max/avg pooling,
  flatten, auto_po2/po2/binary/ternary kernels, QConv2DBatchnorm, QBatchNormalization,
  pruned (zero) weights). Weights are random, BN statistics are set to random non-trivial
  values; nothing is trained, so building one takes well under a second.
- `save_layouts(model, directory)`: writes the model as a full ``.h5``, ``to_json()`` +
  ``save_weights`` ``.h5``, the Keras 2.0 bare-list Sequential JSON, a Sequential without
  InputLayer (``batch_input_shape`` on the first layer), layer entries without
  ``module``/``registered_name``, kernel quantizers as strings (older QKeras), a
  ``Functional`` version and ``.keras`` archives of both.
- TF-free helpers to write hand-made configs and Keras-layout weight files with h5py:
  `sequential_config`, `write_weights_h5`, `write_full_h5`.
- `exact_inputs(shape, n, seed)`: inputs exactly representable in ``fixed<8,4>`` (and so in
  the default input type ``fixed<16,6>``).

TensorFlow/QKeras are imported inside the builders only.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

# ---------------------------------------------------------------------------------------
# TF-free helpers
# ---------------------------------------------------------------------------------------


def exact_inputs(
    shape: tuple[int, ...], n: int = 64, seed: int = 0, frac: int = 4, bits: int = 8
) -> np.ndarray:
    """(n, *shape) float inputs on the grid of ``fixed<bits, bits - frac>`` (exact in float32)."""
    rng = np.random.default_rng(seed)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return (rng.integers(lo, hi + 1, size=(n, *shape)) / 2.0**frac).astype(np.float32)


def layer_entry(
    class_name: str, config: dict[str, Any], module: str | None = "keras.layers"
) -> dict[str, Any]:
    entry: dict[str, Any] = {"class_name": class_name, "config": config}
    if module is not None:
        entry = {"module": module, **entry, "registered_name": None}
    return entry


def sequential_config(
    layers: list[dict[str, Any]], input_shape: tuple[int, ...] | None = None, name: str = "handmade"
) -> dict[str, Any]:
    """A Keras 2 Sequential config from layer entries (with an InputLayer if input_shape)."""
    entries = list(layers)
    if input_shape is not None:
        entries.insert(
            0,
            layer_entry(
                "InputLayer",
                {"batch_input_shape": [None, *input_shape], "dtype": "float32", "name": "input_1"},
            ),
        )
    return {
        "class_name": "Sequential",
        "config": {"name": name, "layers": entries},
        "keras_version": "2.15.0",
        "backend": "tensorflow",
    }


def _names_attr(names: list[str]) -> np.ndarray:
    """How Keras 2 stores a list of names: fixed-length bytes (an empty float array if none)."""
    return np.array([n.encode() for n in names], dtype="S") if names else np.zeros(0)


def _write_weight_groups(root: h5py.Group, weights: dict[str, dict[str, np.ndarray]]) -> None:
    root.attrs["layer_names"] = _names_attr(list(weights))
    root.attrs["backend"] = b"tensorflow"
    root.attrs["keras_version"] = b"2.15.0"
    for layer, named in weights.items():
        group = root.create_group(layer)
        names = [f"{layer}/{short}:0" for short in named]
        group.attrs["weight_names"] = _names_attr(names)
        for full, value in zip(names, named.values(), strict=True):
            group.create_dataset(full, data=np.asarray(value, dtype=np.float32))


def write_weights_h5(path: Path, weights: dict[str, dict[str, np.ndarray]]) -> Path:
    """A ``save_weights``-layout file: ``<layer>/<layer>/<short>:0`` + ``weight_names``."""
    with h5py.File(path, "w") as f:
        _write_weight_groups(f, weights)
    return path


def write_full_h5(
    path: Path, config: dict[str, Any], weights: dict[str, dict[str, np.ndarray]]
) -> Path:
    """A full-model-layout file: ``model_config`` attr + ``model_weights/...``."""
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.15.0"
        _write_weight_groups(f.create_group("model_weights"), weights)
    return path


# ---------------------------------------------------------------------------------------
# JSON layout rewrites (what older Keras/QKeras versions wrote)
# ---------------------------------------------------------------------------------------
def legacy_bare_list(config: dict[str, Any]) -> dict[str, Any]:
    """Keras 2.0: Sequential ``config`` is the bare list of layers, no InputLayer,
    ``batch_input_shape`` on the first layer, no ``module`` keys."""
    out = without_input_layer(strip_modules(config))
    out["config"] = out["config"]["layers"]
    return out


def without_input_layer(config: dict[str, Any]) -> dict[str, Any]:
    """Keras 2.1-2.3 Sequential: no InputLayer, ``batch_input_shape`` on the first layer."""
    out = copy.deepcopy(config)
    layers = out["config"]["layers"]
    if layers[0]["class_name"] == "InputLayer":
        shape = layers[0]["config"]["batch_input_shape"]
        layers.pop(0)
        layers[0]["config"]["batch_input_shape"] = shape
    for layer in layers:
        layer.pop("build_config", None)
    return out


def strip_modules(config: dict[str, Any]) -> dict[str, Any]:
    """Layer entries without ``module`` / ``registered_name`` / ``build_config`` (Keras < 2.13)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: strip(v)
                for k, v in value.items()
                if k not in ("module", "registered_name", "build_config")
            }
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(config)


def quantizers_as_strings(config: dict[str, Any]) -> dict[str, Any]:
    """Quantizer dicts rewritten as strings (``"quantized_bits(6,0,alpha=1)"``), as older
    QKeras versions saved them."""

    def text(q: dict[str, Any]) -> str:
        cfg = {
            k: v
            for k, v in q["config"].items()
            if k
            not in (
                "qnoise_factor",
                "use_stochastic_rounding",
                "var_name",
                "use_ste",
                "use_variables",
            )
            and v is not None
        }
        return f"{q['class_name']}(" + ", ".join(f"{k}={v!r}" for k, v in cfg.items()) + ")"

    out = copy.deepcopy(config)
    for layer in out["config"]["layers"]:
        for key, value in list(layer["config"].items()):
            if key.endswith("quantizer") and isinstance(value, dict) and "class_name" in value:
                layer["config"][key] = text(value)
    return out


def as_functional(model: Any) -> Any:
    import tensorflow as tf

    functional = tf.keras.Model(model.inputs, model.outputs, name=f"{model.name}_functional")
    return functional


# ---------------------------------------------------------------------------------------
# builders (TensorFlow inside)
# ---------------------------------------------------------------------------------------
def _randomize_batchnorm(model: Any, rng: np.random.Generator) -> None:
    for layer in model.layers:
        if type(layer).__name__ in ("BatchNormalization", "QBatchNormalization"):
            weights = []
            for w in layer.weights:
                short = w.name.rsplit("/", 1)[-1].split(":")[0]
                n = w.shape[0]
                weights.append(
                    {
                        "gamma": rng.uniform(0.5, 1.5, n),
                        "beta": rng.normal(0, 0.3, n),
                        "moving_mean": rng.normal(0, 0.3, n),
                        "moving_variance": rng.uniform(0.3, 2.0, n),
                    }[short]
                )
            layer.set_weights(weights)
        if type(layer).__name__ in ("QConv2DBatchnorm", "QDenseBatchnorm"):
            values = []
            for w in layer.weights:
                short = w.name.rsplit("/", 1)[-1].split(":")[0]
                shape = tuple(w.shape)
                if short == "gamma":
                    values.append(rng.uniform(0.5, 1.5, shape))
                elif short == "beta":
                    values.append(rng.normal(0, 0.3, shape))
                elif short == "moving_mean":
                    values.append(rng.normal(0, 0.3, shape))
                elif short == "moving_variance":
                    values.append(rng.uniform(0.3, 2.0, shape))
                elif short == "bias":
                    values.append(rng.normal(0, 0.2, shape))
                else:
                    values.append(w.numpy())
            layer.set_weights(values)


def _random_biases(model: Any, rng: np.random.Generator, scale: float = 0.3) -> None:
    """Non-zero biases (Keras initializes them to zero, which would test nothing)."""
    for layer in model.layers:
        if type(layer).__name__ in ("QConv2DBatchnorm", "QDenseBatchnorm"):
            continue
        if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, scale, tuple(layer.bias.shape)).astype(np.float32))


def prune_weights(model: Any, fraction: float, seed: int = 0) -> None:
    """Zero ``fraction`` of every kernel, smallest magnitudes first (what magnitude pruning
    leaves after ``strip_pruning``)."""
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        w = kernel.numpy()
        cut = np.quantile(np.abs(w), fraction)
        kernel.assign(np.where(np.abs(w) <= cut, 0.0, w).astype(np.float32))


def _finish(model: Any, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    _random_biases(model, rng)
    _randomize_batchnorm(model, rng)
    return model


def _seed(seed: int) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


def _symmetric_quantizers(bits: int) -> dict[str, Any]:
    """Kernel and bias quantizers ``quantized_bits(bits, 0, alpha=1)``, the usual QKeras pair."""
    from qkeras import quantized_bits

    return {
        "kernel_quantizer": quantized_bits(bits, 0, alpha=1),
        "bias_quantizer": quantized_bits(bits, 0, alpha=1),
    }


def qkeras_cnn(seed: int = 0) -> Any:
    """QConv2D same/stride 2 on an odd 9x9 input, float relu then QActivation, MaxPool same,
    QConv2D valid with a fused quantized_relu, AvgPool 2x2, Dropout, Flatten, QDense, softmax."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_relu

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((9, 9, 2), name="x"),
            QConv2D(
                4,
                3,
                strides=2,
                padding="same",
                **_symmetric_quantizers(6),
                activation="relu",
                name="conv_a",
            ),
            QActivation("quantized_relu(4,1)", name="act_a"),
            L.MaxPooling2D(2, strides=1, padding="same", name="pool_a"),
            QConv2D(
                6,
                (2, 3),
                padding="valid",
                kernel_quantizer="quantized_bits(5,0,alpha=1)",
                bias_quantizer="quantized_bits(5,1,alpha=1)",
                activation=quantized_relu(5, 2),
                name="conv_b",
            ),
            L.AveragePooling2D(2, name="pool_b"),
            L.Dropout(0.3, name="drop"),
            L.Flatten(name="flat"),
            QDense(5, **_symmetric_quantizers(6), name="logits"),
            L.Activation("softmax", name="softmax"),
        ],
        name="qkeras_cnn",
    )
    return _finish(model, seed)


def qkeras_conv1d(seed: int = 0) -> Any:
    """QConv1D same/stride 2 (odd length), MaxPooling1D, QConv1D causal, AveragePooling1D, QDense."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((21, 3)),
            QConv1D(4, 5, strides=2, padding="same", **_symmetric_quantizers(6), name="c1"),
            QActivation("quantized_relu(5,2)", name="r1"),
            L.MaxPooling1D(2, padding="same", name="p1"),
            QConv1D(
                3,
                3,
                padding="causal",
                **_symmetric_quantizers(4),
                activation="quantized_relu(4,1)",
                name="c2",
            ),
            L.AveragePooling1D(2, name="p2"),
            L.Flatten(name="flat"),
            QDense(4, **_symmetric_quantizers(6), name="out"),
        ],
        name="qkeras_conv1d",
    )
    return _finish(model, seed)


def qkeras_mlp_bn_input(seed: int = 0) -> Any:
    """BatchNormalization right after the input, QDense with quantized_relu, QDense."""
    import tensorflow as tf
    from qkeras import QActivation, QDense

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((16,)),
            L.BatchNormalization(name="bn_in"),
            QDense(12, **_symmetric_quantizers(6), name="d1"),
            QActivation("quantized_relu(6,2)", name="r1"),
            QDense(3, **_symmetric_quantizers(6), name="d2"),
        ],
        name="qkeras_mlp_bn_input",
    )
    return _finish(model, seed)


def qkeras_bn_after_pool(seed: int = 0) -> Any:
    """A BatchNormalization after a MaxPool in a QKeras model: stays a ScaleShift."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((8, 8, 1)),
            QConv2D(4, 3, **_symmetric_quantizers(6), name="conv"),
            QActivation("quantized_relu(6,2)", name="relu"),
            L.MaxPooling2D(2, name="pool"),
            L.BatchNormalization(name="bn"),
            L.Flatten(name="flat"),
            QDense(4, **_symmetric_quantizers(6), name="out"),
        ],
        name="qkeras_bn_after_pool",
    )
    return _finish(model, seed)


def float_cnn(seed: int = 0) -> Any:
    """A float Keras CNN: Conv2D+BN (folded)+ReLU(6), MaxPool, Conv2D relu, BN (after an
    activation: ScaleShift), GlobalAveragePooling2D, Dense softmax."""
    import tensorflow as tf

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((10, 10, 3)),
            L.Conv2D(8, 3, padding="same", name="conv1"),
            L.BatchNormalization(name="bn1"),
            L.ReLU(max_value=6.0, name="relu6"),
            L.MaxPooling2D(2, name="pool1"),
            L.Conv2D(8, 3, strides=2, activation="relu", name="conv2"),
            L.BatchNormalization(name="bn2"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(6, activation="softmax", name="out"),
        ],
        name="float_cnn",
    )
    return _finish(model, seed)


def float_mlp(seed: int = 0) -> Any:
    """A float MLP: BN on the input, Dense relu, Dropout, Dense, Softmax layer."""
    import tensorflow as tf

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((20,)),
            L.BatchNormalization(name="bn_in"),
            L.Dense(32, activation="relu", name="d1"),
            L.Dropout(0.2, name="drop"),
            L.Dense(10, name="d2"),
            L.Softmax(name="softmax"),
        ],
        name="float_mlp",
    )
    return _finish(model, seed)


def qkeras_auto_po2(seed: int = 0) -> Any:
    """Kernel quantizers without alpha (QKeras turns them into auto_po2 + symmetric) and
    pruned (zero) kernels, including one all-zero output channel."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((7, 7, 2)),
            QConv2D(
                5,
                3,
                kernel_quantizer=quantized_bits(4, 0),
                bias_quantizer=quantized_bits(8, 2, alpha=1),
                name="conv",
            ),
            QActivation("quantized_relu(4,1)", name="relu"),
            L.Flatten(name="flat"),
            QDense(
                4,
                kernel_quantizer="quantized_bits(6,1)",
                bias_quantizer="quantized_bits(8,2,alpha=1)",
                name="out",
            ),
        ],
        name="qkeras_auto_po2",
    )
    _finish(model, seed)
    prune_weights(model, 0.5, seed)
    conv = model.get_layer("conv")
    kernel = conv.kernel.numpy()
    kernel[..., 1] = 0.0
    conv.kernel.assign(kernel)
    return model


def qkeras_exotic(seed: int = 0) -> Any:
    """po2, binary and ternary kernels."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, binary, quantized_bits, quantized_po2, ternary

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((6, 6, 2)),
            QConv2D(
                4,
                3,
                kernel_quantizer=binary(alpha=1),
                bias_quantizer=quantized_bits(6, 2, alpha=1),
                name="bin",
            ),
            QActivation("quantized_relu(4,2)", name="r1"),
            QConv2D(4, 2, kernel_quantizer=ternary(), use_bias=False, name="ter"),
            QActivation("quantized_relu(4,2)", name="r2"),
            L.Flatten(name="flat"),
            QDense(
                3,
                kernel_quantizer=quantized_po2(4, 1),
                bias_quantizer=quantized_po2(5, 2),
                name="po2",
            ),
        ],
        name="qkeras_exotic",
    )
    return _finish(model, seed)


def qkeras_conv_batchnorm(seed: int = 0) -> Any:
    """QConv2DBatchnorm (folded conv + BN, auto_po2 kernel) + QActivation + QDense."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2DBatchnorm, QDense, quantized_bits

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((6, 6, 2)),
            QConv2DBatchnorm(
                4,
                3,
                kernel_quantizer=quantized_bits(6, 0),
                bias_quantizer=quantized_bits(8, 3, alpha=1),
                name="cbn",
            ),
            QActivation("quantized_relu(5,2)", name="relu"),
            L.Flatten(name="flat"),
            QDense(3, **_symmetric_quantizers(6), name="out"),
        ],
        name="qkeras_conv_batchnorm",
    )
    return _finish(model, seed)


def qkeras_qbatchnorm(seed: int = 0) -> Any:
    """QBatchNormalization with its default power-of-two parameter quantizers."""
    import tensorflow as tf
    from qkeras import QActivation, QBatchNormalization, QDense

    _seed(seed)
    L = tf.keras.layers
    model = tf.keras.Sequential(
        [
            L.InputLayer((12,)),
            QDense(8, **_symmetric_quantizers(6), name="d1"),
            QBatchNormalization(name="qbn"),
            QActivation("quantized_relu(6,2)", name="r1"),
            QDense(3, **_symmetric_quantizers(6), name="d2"),
        ],
        name="qkeras_qbatchnorm",
    )
    return _finish(model, seed)


MODELS: dict[str, Callable[[int], Any]] = {
    "qkeras_cnn": qkeras_cnn,
    "qkeras_conv1d": qkeras_conv1d,
    "qkeras_mlp_bn_input": qkeras_mlp_bn_input,
    "qkeras_bn_after_pool": qkeras_bn_after_pool,
    "float_cnn": float_cnn,
    "float_mlp": float_mlp,
    "qkeras_auto_po2": qkeras_auto_po2,
    "qkeras_exotic": qkeras_exotic,
    "qkeras_conv_batchnorm": qkeras_conv_batchnorm,
    "qkeras_qbatchnorm": qkeras_qbatchnorm,
}


def build(name: str, seed: int = 0) -> Any:
    return MODELS[name](seed)


def save_layouts(
    model: Any, directory: Path, keras_archive: bool = True
) -> dict[str, tuple[Path, Path | None]]:
    """Write ``model`` in every layout; returns layout -> (model path, weights path or None).

    Keras writes ``.keras`` archives of QKeras models too (it cannot reload them; rtlgen can)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / model.name
    out: dict[str, tuple[Path, Path | None]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(f"{stem}.h5")
        out["full_h5"] = (Path(f"{stem}.h5"), None)
        weights = Path(f"{stem}_weights.h5")
        model.save_weights(weights)
        config = json.loads(model.to_json())
        variants = {
            "json": config,
            "json_bare_list": legacy_bare_list(config),
            "json_no_input_layer": without_input_layer(config),
            "json_no_module": strip_modules(config),
            "json_string_quantizers": quantizers_as_strings(config),
        }
        for layout, variant in variants.items():
            path = Path(f"{stem}_{layout}.json")
            path.write_text(json.dumps(variant))
            out[layout] = (path, weights)
        # Keras >= 2.13: a name ending in .weights.h5 gets the .keras archive's layout
        new_weights = Path(f"{stem}.weights.h5")
        model.save_weights(new_weights)
        out["json_new_weights"] = (Path(f"{stem}_json.json"), new_weights)
        functional = as_functional(model)
        path = Path(f"{stem}_functional.json")
        path.write_text(functional.to_json())
        out["functional_json"] = (path, weights)
        functional.save(f"{stem}_functional.h5")
        out["functional_h5"] = (Path(f"{stem}_functional.h5"), None)
        if keras_archive:
            model.save(f"{stem}.keras")
            out["keras"] = (Path(f"{stem}.keras"), None)
            functional.save(f"{stem}_functional.keras")
            out["functional_keras"] = (Path(f"{stem}_functional.keras"), None)
    return out


# ---------------------------------------------------------------------------------------
# comparing graphs
# ---------------------------------------------------------------------------------------
def graph_signature(graph: Any, with_input_name: bool = False) -> list[tuple]:
    """Everything that defines a lowered graph's arithmetic, for equality checks between
    layouts (the input node's name differs between layouts, so it is left out by default)."""
    rows: list[tuple] = [("softmax", graph.softmax)]
    for index, node in enumerate(graph.nodes):
        row: list[Any] = [
            node.op,
            node.name if index or with_input_name else "",
            node.in_shape,
            node.out_shape,
            str(node.out_type),
        ]
        for field in (
            "kernel",
            "stride",
            "padding",
            "pool",
            "activation",
            "acc_type",
            "rounding",
            "overflow",
        ):
            if hasattr(node, field):
                row.append((field, str(getattr(node, field))))
        for field in ("weights", "bias", "scale", "shift"):
            value = getattr(node, field, None)
            if value is not None:
                row.append((field, str(value.type), value.mantissa.tolist()))
        rows.append(tuple(row))
    return rows
