"""Quantization-aware training helpers: QKeras model builders, pruning, training, saving.

This is the one module of ``rtlgen.quant`` that uses TensorFlow, QKeras and
tensorflow-model-optimization (``pip install 'rtlgen[train]'``). They are imported inside
the functions, never when this module is imported, so the converter stays TensorFlow-free.

Conventions the converter relies on:

- every quantizer is built with ``alpha=1``. QKeras 0.9.0 turns ``quantized_bits(b, i)``
  *without* ``alpha`` inside ``QConv2D``/``QDense`` into ``alpha="auto_po2"`` (a trained
  per-channel power-of-two scale), which is a different arithmetic;
- the classifier ends in a linear, quantized ``output_dense`` followed by a separate
  ``Activation("softmax")`` layer, so the logits are a layer output of their own
  (:func:`logits_model`);
- in ``model.to_json()``, kernel and bias quantizers appear as dicts
  ``{"module": "qkeras.quantizers", "class_name": "quantized_bits", "config": {"bits": 6,
  "integer": 0, "symmetric": 0, "alpha": 1, "keep_negative": true, ...}}`` (QConv2D/QDense
  always serialize them so), and each ``QActivation``'s ``activation`` as a string such as
  ``"quantized_relu(6,0)"``: QActivation stores what it was given and can only be reloaded
  from a string, so the builders give it one.

Pruning uses tfmot's ``prune_low_magnitude`` directly: QKeras 0.9.0's ``QConv2D``,
``QDense`` (and the other weight layers) implement tfmot's ``PrunableLayer``
(``get_prunable_weights() -> [kernel]``). The mask zeroes the *float* kernel; QKeras's
quantizers map 0 to 0, so a pruned weight is also zero after quantization (and small
surviving weights may round to zero as well: :func:`layer_sparsity` with
``quantized=True`` counts those).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelFileError, RtlgenError

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "build_svhn_cnn",
    "build_demo_cnn",
    "prune",
    "strip_pruning",
    "layer_sparsity",
    "logits_model",
    "train",
    "save_model",
    "save_h5",
    "load_model",
    "use_tf_keras",
]


def use_tf_keras() -> None:
    """Make ``tf.keras`` Keras 2, which QKeras 0.9 needs: TensorFlow 2.15 (the ``train``
    extra on Python 3.11) has it built in; from TensorFlow 2.16 on (2.21 on Python 3.12/3.13)
    Keras 2 is the tf-keras package, used only when ``TF_USE_LEGACY_KERAS=1`` is set before
    TensorFlow is imported (else ``tf.keras`` is Keras 3 and ``import qkeras`` fails). Sets
    it, unless already set, when tf-keras is installed and TensorFlow not yet imported;
    called when this module is imported and before rtlgen's own TensorFlow imports."""
    if "tensorflow" not in sys.modules and importlib.util.find_spec("tf_keras") is not None:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


use_tf_keras()

#: Layer types whose kernels :func:`prune` masks (their Q* subclasses included).
_PRUNABLE_KINDS = ("Conv1D", "Conv2D", "Dense")


@contextlib.contextmanager
def _quiet_qkeras_config():
    """QKeras serializes quantizers through ``keras.constraints.serialize``, which warns
    on every non-constraint object; the output is correct, the warning is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*keras\.constraints\.serialize\(\).*")
        # Keras 2.15 calls HDF5 "legacy"; it is the format rtlgen reads.
        warnings.filterwarnings("ignore", message=r".*saving your model as an HDF5 file.*")
        yield


def _qkeras():
    import qkeras

    return qkeras


def _weight_quantizer(bits: int, integer: int):
    return _qkeras().quantized_bits(bits, integer, alpha=1)


def _quantized_relu(bits: int, integer: int, name: str):
    # A string, not a quantizer object: QActivation.get_config stores `activation` as
    # given, and QActivation.__init__ can rebuild itself only from a string (a quantizer
    # object is saved as a dict, which model_from_json/load_model then cannot load).
    return _qkeras().QActivation(f"quantized_relu({bits},{integer})", name=name)


# --------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------
def build_svhn_cnn(
    bits: int = 6,
    integer: int = 0,
    bn_before_pool: bool = False,
    filters: Sequence[int] = (16, 16, 24),
    dense: Sequence[int] = (42, 64),
    input_shape: Sequence[int] = (32, 32, 3),
    classes: int = 10,
    quantize: bool = True,
    relu_bits: int | None = None,
    relu_integer: int = 0,
    l1: float = 1e-4,
    name: str | None = None,
) -> tf.keras.Model:
    """The SVHN CNN of the hls4ml CNN paper (arXiv:2101.05108) and the hls4ml tutorial.

    A Functional model::

        input (32, 32, 3)
        3 x [conv_i: Conv2D(f, 3x3, stride 1, 'valid', no bias)
             -> pool_i: MaxPooling2D 2x2 -> bn_conv_i: BatchNormalization -> conv_act_i: ReLU]
             (with bn_before_pool: conv -> BN -> ReLU -> pool, the tutorial's order)
        flatten
        2 x [dense_i: Dense(n, no bias) -> bn_dense_i: BatchNormalization -> dense_act_i: ReLU]
        output_dense: Dense(classes, bias, linear) -> output_softmax: Activation('softmax')

    Shapes for the defaults: 30x30x16 -> 15x15 -> 13x13x16 -> 6x6 -> 4x4x24 -> 2x2 -> 96
    -> 42 -> 64 -> 10.

    ``quantize=True``: QConv2D/QDense with ``quantized_bits(bits, integer, alpha=1)``
    kernels (and bias, in ``output_dense``), ``QActivation(quantized_relu(relu_bits,
    relu_integer))`` ReLUs (``relu_bits`` defaults to ``bits``); the BatchNormalization
    layers stay float (the converter folds them). ``quantize=False``: the same network with
    plain Keras layers (float baseline). Kernels: ``lecun_uniform`` initializer and an L1
    regularizer ``l1`` (0 disables it), as in the paper.
    """
    import tensorflow as tf

    layers = tf.keras.layers
    relu_bits = bits if relu_bits is None else relu_bits
    regularizer = tf.keras.regularizers.l1(l1) if l1 else None
    common = {"kernel_initializer": "lecun_uniform", "kernel_regularizer": regularizer}

    def relu(layer_name: str):
        if quantize:
            return _quantized_relu(relu_bits, relu_integer, layer_name)
        return layers.Activation("relu", name=layer_name)

    def conv(n_filters: int, layer_name: str):
        if quantize:
            return _qkeras().QConv2D(
                n_filters,
                (3, 3),
                strides=(1, 1),
                padding="valid",
                use_bias=False,
                kernel_quantizer=_weight_quantizer(bits, integer),
                name=layer_name,
                **common,
            )
        return layers.Conv2D(
            n_filters,
            (3, 3),
            strides=(1, 1),
            padding="valid",
            use_bias=False,
            name=layer_name,
            **common,
        )

    def fully_connected(units: int, layer_name: str, use_bias: bool):
        if quantize:
            quantizers = {"kernel_quantizer": _weight_quantizer(bits, integer)}
            if use_bias:
                quantizers["bias_quantizer"] = _weight_quantizer(bits, integer)
            return _qkeras().QDense(
                units, use_bias=use_bias, name=layer_name, **quantizers, **common
            )
        return layers.Dense(units, use_bias=use_bias, name=layer_name, **common)

    inputs = layers.Input(shape=tuple(input_shape), name="input")
    x = inputs
    for index, n_filters in enumerate(filters):
        x = conv(int(n_filters), f"conv_{index}")(x)
        pool = layers.MaxPooling2D(pool_size=(2, 2), name=f"pool_{index}")
        if not bn_before_pool:
            x = pool(x)
        x = layers.BatchNormalization(name=f"bn_conv_{index}")(x)
        x = relu(f"conv_act_{index}")(x)
        if bn_before_pool:
            x = pool(x)
    x = layers.Flatten(name="flatten")(x)
    for index, units in enumerate(dense):
        x = fully_connected(int(units), f"dense_{index}", use_bias=False)(x)
        x = layers.BatchNormalization(name=f"bn_dense_{index}")(x)
        x = relu(f"dense_act_{index}")(x)
    x = fully_connected(int(classes), "output_dense", use_bias=True)(x)
    outputs = layers.Activation("softmax", name="output_softmax")(x)
    default_name = "svhn_cnn" if quantize else "svhn_cnn_float"
    return tf.keras.Model(inputs=inputs, outputs=outputs, name=name or default_name)


def build_demo_cnn(
    filters: int = 8,
    bits: int = 6,
    integer: int = 0,
    relu_bits: int | None = None,
    relu_integer: int = 2,
    input_shape: Sequence[int] = (8, 8, 1),
    classes: int = 10,
    quantize: bool = True,
    name: str = "demo_cnn",
) -> tf.keras.Model:
    """A tiny CNN for 8x8x1 digits (rtlgen's bundled demo), as a Sequential model::

        input (8, 8, 1)
        conv_0: QConv2D(filters, 3x3, 'valid', bias)      -> (6, 6, filters)
        conv_act_0: QActivation(quantized_relu(relu_bits, relu_integer))
        pool_0: MaxPooling2D 2x2                           -> (3, 3, filters)
        flatten                                            -> 9 * filters
        output_dense: QDense(classes, bias, linear)        -> logits
        output_softmax: Activation('softmax')

    Kernels and biases use ``quantized_bits(bits, integer, alpha=1)``; ``relu_bits``
    defaults to ``bits``. With the defaults: 80 + 730 parameters, weights ``fixed<6,1>``,
    ReLU outputs ``ufixed<6,2>``. ``quantize=False`` gives the float equivalent.
    """
    import tensorflow as tf

    layers = tf.keras.layers
    relu_bits = bits if relu_bits is None else relu_bits
    if quantize:
        qkeras = _qkeras()
        conv = qkeras.QConv2D(
            filters,
            (3, 3),
            padding="valid",
            kernel_initializer="lecun_uniform",
            kernel_quantizer=_weight_quantizer(bits, integer),
            bias_quantizer=_weight_quantizer(bits, integer),
            name="conv_0",
        )
        act = _quantized_relu(relu_bits, relu_integer, "conv_act_0")
        out = qkeras.QDense(
            classes,
            kernel_initializer="lecun_uniform",
            kernel_quantizer=_weight_quantizer(bits, integer),
            bias_quantizer=_weight_quantizer(bits, integer),
            name="output_dense",
        )
    else:
        conv = layers.Conv2D(filters, (3, 3), kernel_initializer="lecun_uniform", name="conv_0")
        act = layers.Activation("relu", name="conv_act_0")
        out = layers.Dense(classes, kernel_initializer="lecun_uniform", name="output_dense")
    return tf.keras.Sequential(
        [
            layers.InputLayer(input_shape=tuple(input_shape), name="input"),
            conv,
            act,
            layers.MaxPooling2D(pool_size=(2, 2), name="pool_0"),
            layers.Flatten(name="flatten"),
            out,
            layers.Activation("softmax", name="output_softmax"),
        ],
        name=name,
    )


def logits_model(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` without its final ``Activation('softmax')`` layer (shares its layers).

    Raises :class:`RtlgenError` if the last layer is not a separate softmax activation.
    """
    import tensorflow as tf

    last = model.layers[-1]
    if not (
        isinstance(last, tf.keras.layers.Activation)
        and last.get_config()["activation"] == "softmax"
    ):
        raise RtlgenError(
            f"logits_model: the last layer of {model.name!r} is {type(last).__name__} "
            f"{last.name!r}, not a separate Activation('softmax')"
        )
    return tf.keras.Model(inputs=model.inputs, outputs=last.input, name=f"{model.name}_logits")


# --------------------------------------------------------------------------------------
# Pruning
# --------------------------------------------------------------------------------------
def _is_prunable(layer) -> bool:
    import tensorflow as tf

    kinds = tuple(getattr(tf.keras.layers, kind) for kind in _PRUNABLE_KINDS)
    return isinstance(layer, kinds)


def _unwrapped_layers(model) -> Iterable:
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    for layer in model.layers:
        yield layer.layer if isinstance(layer, pruning_wrapper.PruneLowMagnitude) else layer


def prune(
    model: tf.keras.Model,
    sparsity: float,
    *,
    frequency: int = 10,
    begin_step: int = 0,
    skip: Iterable[str] = (),
) -> tf.keras.Model:
    """Wrap every Conv1D/Conv2D/Dense layer (QKeras ones included) of ``model`` for
    magnitude pruning at constant ``sparsity``; layers named in ``skip`` are left alone.

    The schedule is tfmot's ``ConstantSparsity(sparsity, begin_step, frequency=frequency)``:
    the smallest-magnitude ``sparsity`` fraction of each kernel is masked to zero at training
    step ``begin_step + k * frequency`` (k >= 1; the first update is at step
    ``begin_step + frequency``) and stays masked in between. tfmot's default frequency of 100
    steps prunes nothing in short runs, hence 10.

    Train the returned model with ``tfmot.sparsity.keras.UpdatePruningStep()`` among the
    callbacks (:func:`train` does this), then :func:`strip_pruning` it. The returned model
    *shares its layers* with ``model``: training it trains ``model``, and after training
    ``model`` itself holds the pruned weights (UpdatePruningStep re-applies the masks at
    the end of every epoch).
    """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    if not 0.0 <= sparsity < 1.0:
        raise RtlgenError(f"prune: sparsity must be in [0, 1), got {sparsity}")
    if frequency < 1:
        raise RtlgenError(f"prune: frequency must be >= 1, got {frequency}")
    skipped = set(skip)
    unknown = skipped - {layer.name for layer in model.layers}
    if unknown:
        raise RtlgenError(
            f"prune: skip names layers that {model.name!r} does not have: {sorted(unknown)}"
        )
    schedule = tfmot.sparsity.keras.ConstantSparsity(
        sparsity, begin_step=begin_step, frequency=frequency
    )

    def wrap(layer):
        if _is_prunable(layer) and layer.name not in skipped:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    if not any(_is_prunable(layer) and layer.name not in skipped for layer in model.layers):
        raise RtlgenError(f"prune: {model.name!r} has no Conv1D/Conv2D/Dense layer to prune")
    with _quiet_qkeras_config():
        pruned = tf.keras.models.clone_model(model, clone_function=wrap)
    return pruned


def strip_pruning(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` with tfmot's pruning wrappers removed (the wrapped layers themselves, with
    their masked weights, are kept: no copy)."""
    import tensorflow_model_optimization as tfmot

    with _quiet_qkeras_config():
        return tfmot.sparsity.keras.strip_pruning(model)


def layer_sparsity(model: tf.keras.Model, quantized: bool = False) -> dict[str, float]:
    """Fraction of exactly-zero kernel weights of each Conv/Dense layer, by layer name.

    Works on pruned (wrapped) and plain models. ``quantized=True`` counts zeros of the
    *quantized* kernel (``layer.kernel_quantizer_internal(kernel)``) for QKeras layers:
    what the hardware sees.
    """
    result = {}
    for layer in _unwrapped_layers(model):
        if not _is_prunable(layer):
            continue
        kernel = layer.kernel
        quantizer = getattr(layer, "kernel_quantizer_internal", None)
        if quantized and quantizer is not None:
            kernel = quantizer(kernel)
        values = np.asarray(kernel)
        result[layer.name] = float(np.mean(values == 0.0))
    return result


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def _epoch_logger(
    model, log: Callable[[str], None] | None, epochs: int, pruned_layers: Sequence[str]
):
    import tensorflow as tf

    class EpochLogger(tf.keras.callbacks.Callback):
        """Logs each epoch's metrics and the achieved sparsity of each pruned layer; the
        sparsities also go into the History as ``sparsity/<layer>``."""

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            achieved = {
                name: value
                for name, value in layer_sparsity(model).items()
                if name in pruned_layers
            }
            for name, value in achieved.items():
                logs[f"sparsity/{name}"] = value
            if log is not None:
                metrics = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if "/" not in k)
                line = f"epoch {epoch + 1}/{epochs}: {metrics}"
                if achieved:
                    line += " | sparsity " + " ".join(f"{k} {v:.3f}" for k, v in achieved.items())
                log(line)

    return EpochLogger()


def train(
    model: tf.keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    prune_sparsity: float | None = None,
    log: Callable[[str], None] | None = print,
    *,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    learning_rate: float = 3e-3,
    prune_frequency: int = 10,
    prune_skip: Iterable[str] = (),
    callbacks: Sequence[Any] = (),
    seed: int | None = None,
) -> tf.keras.callbacks.History:
    """Train ``model`` in place (Adam, cross-entropy, accuracy), optionally pruned.

    ``y`` holds class indices (sparse cross-entropy) or one-hot rows (categorical). With
    ``prune_sparsity``, the model is trained through :func:`prune` (constant sparsity,
    mask updated every ``prune_frequency`` steps, layers in ``prune_skip`` untouched) with
    ``UpdatePruningStep``; since the pruning wrappers share ``model``'s layers, ``model``
    ends up trained and pruned, with no wrappers: save it directly.

    ``log`` (``None`` for silence) receives the pruning schedule first, then one line per
    epoch with the metrics and, when pruning, every layer's achieved sparsity. The returned
    Keras ``History`` has the metrics and ``sparsity/<layer>`` per epoch in ``.history``.
    ``seed`` calls ``tf.keras.utils.set_random_seed`` first (batch order, dropout); on CPU
    the run is then bit-reproducible. Seed *before* building the model for reproducible
    initial weights.
    """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    y = np.asarray(y)
    sparse_labels = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
    loss = (
        tf.keras.losses.SparseCategoricalCrossentropy()
        if sparse_labels
        else tf.keras.losses.CategoricalCrossentropy()
    )
    fit_callbacks = list(callbacks)
    fit_model = model
    pruned_layers: list[str] = []
    if prune_sparsity is not None:
        total_steps = -(-len(x) // batch_size) * epochs
        if total_steps < prune_frequency:
            raise RtlgenError(
                f"train: {total_steps} training steps in all, fewer than prune_frequency="
                f"{prune_frequency}: the pruning mask would never be applied"
            )
        fit_model = prune(model, prune_sparsity, frequency=prune_frequency, skip=prune_skip)
        fit_callbacks.insert(0, tfmot.sparsity.keras.UpdatePruningStep())
        pruned_layers = [
            layer.name
            for layer in _unwrapped_layers(fit_model)
            if _is_prunable(layer) and layer.name not in set(prune_skip)
        ]
        if log is not None:
            sizes = {
                layer.name: int(np.prod(layer.kernel.shape))
                for layer in model.layers
                if layer.name in pruned_layers
            }
            described = ", ".join(f"{name} ({sizes[name]} weights)" for name in pruned_layers)
            log(
                f"pruning {described} to constant sparsity {prune_sparsity:.2f} "
                f"(mask update every {prune_frequency} steps from step {prune_frequency}; "
                f"{total_steps // epochs} steps per epoch, {total_steps} in all)"
            )
    # After UpdatePruningStep, so that it sees the weights re-masked at the epoch's end.
    fit_callbacks.append(_epoch_logger(model, log, epochs, pruned_layers))

    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    fit_model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    history = fit_model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        callbacks=fit_callbacks,
        verbose=0,
    )
    if fit_model is not model:
        # The wrappers are discarded; model's layers hold the masked weights. Compile model
        # too so that model.evaluate works.
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return history


# --------------------------------------------------------------------------------------
# Saving and loading (Keras 2 HDF5; .keras files of QKeras models do not reload)
# --------------------------------------------------------------------------------------
def _has_pruning_wrappers(model) -> bool:
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    return any(isinstance(layer, pruning_wrapper.PruneLowMagnitude) for layer in model.layers)


def _savable(model):
    return strip_pruning(model) if _has_pruning_wrappers(model) else model


def save_model(
    model: tf.keras.Model, json_path: str | os.PathLike, weights_path: str | os.PathLike
) -> None:
    """Write the architecture (``model.to_json()``, indented) and the weights
    (``save_weights`` in the Keras 2 HDF5 layout) — the pair rtlgen converts without
    TensorFlow. Pruning wrappers are stripped first."""
    model = _savable(model)
    with _quiet_qkeras_config():
        text = model.to_json(indent=1)
    with open(json_path, "w") as handle:
        handle.write(text + "\n")
    model.save_weights(os.fspath(weights_path), save_format="h5")


def save_h5(model: tf.keras.Model, path: str | os.PathLike) -> None:
    """Write the full model (architecture + weights, no optimizer) as a Keras 2 ``.h5``
    file. Pruning wrappers are stripped first. (``.keras`` files of QKeras models do not
    reload with QKeras 0.9.0; use this or :func:`save_model`.)"""
    model = _savable(model)
    with _quiet_qkeras_config():
        model.save(os.fspath(path), save_format="h5", include_optimizer=False)


def load_model(
    path: str | os.PathLike, weights_path: str | os.PathLike | None = None
) -> tf.keras.Model:
    """Load a model saved by :func:`save_h5` (one ``.h5``) or :func:`save_model`
    (``.json`` + ``weights_path``), QKeras layers included. Not compiled."""
    import tensorflow as tf

    qkeras_utils = __import__("qkeras.utils", fromlist=["_"])
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"model file not found: {path}")
    custom_objects: dict[str, Any] = {}
    qkeras_utils._add_supported_quantized_objects(custom_objects)
    if path.endswith(".json"):
        if weights_path is None:
            raise RtlgenError(f"load_model: {path} is an architecture only; pass weights_path")
        if not os.path.isfile(weights_path):
            raise ModelFileError(f"weights file not found: {weights_path}")
        with open(path) as handle:
            text = handle.read()
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"{path} is not JSON: {exc}") from exc
        model = tf.keras.models.model_from_json(text, custom_objects=custom_objects)
        model.load_weights(os.fspath(weights_path))
        return model
    return tf.keras.models.load_model(path, custom_objects=custom_objects, compile=False)
