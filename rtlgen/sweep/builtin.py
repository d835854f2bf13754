"""Built-in trainable models of a sweep: ``model: {builtin: jet_mlp | svhn_cnn, ...}``.

- ``jet_mlp``: the hls4ml/da4ml jet-tagging MLP 16 -> 64 -> 32 -> 32 -> 5 (QKeras
  ``quantized_bits(weight_bits, 0, alpha=1)`` weights and biases, ``quantized_relu(
  activation_bits, 0)``), trained quantization-aware on a synthetic stand-in for the jet data
  (5 Gaussian classes in 16 correlated features; the real data cannot be downloaded here),
  pruned to ``sparsity`` by constant-sparsity magnitude pruning. Defaults: 6/6 bits, 10
  epochs, 20,000 training and 2,000 test samples, batch size 256, learning rate 0.003,
  pruning mask updated every 10 steps.
- ``svhn_cnn``: the paper's SVHN CNN, trained by the study's own function
  (`rtlgen.study.train_variant`, quick settings unless overridden), ``weight_bits`` for
  weights and activations (default 6; ``float``: the float model, converted with the paper's
  post-training quantization), ``layer_order`` ``bn_first`` (conv-BN-ReLU-pool, default) or
  ``pool_first``; a pruned variant is fine-tuned from its unpruned sibling's weights, which
  the sweep trains as the pruned one's upstream step.

A train step writes the logits model (Keras JSON + weights), ``precision.yml`` (its input
type, ``fixed<16,6>``; for a float model every layer's types) and its test set; convert and
predict read them, so only the train step (and the peer steps) import TensorFlow. svhn_cnn's
train step also writes the Keras logits of the quantized test inputs (`KERAS_LOGITS`) and its
training record (``models/<variant>.training.json``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rtlgen.sweep.spec import FLOAT_BITS, LAYER_ORDERS, BuiltinModel, Point
from rtlgen.sweep.steps import KERAS_LOGITS, TRAINED_FILES, TrainParams

INPUT_TYPE = "fixed<16,6>"
JET_SIZES = (16, 64, 32, 32, 5)
JET_DEFAULTS = {
    "epochs": 10,
    "train_samples": 20_000,
    "test_samples": 2_000,
    "batch_size": 256,
    "learning_rate": 3e-3,
    "prune_frequency": 10,
}
DEFAULT_BITS = 6


def train_params(model: Any, point: Point) -> TrainParams:
    """The train step's parameters at `point` (the model's defaults filled in, so a spec
    that spells a default out shares the training with one that does not)."""
    assert isinstance(model, BuiltinModel)
    bits = point.get("weight_bits", DEFAULT_BITS)
    svhn = model.name == "svhn_cnn"
    return TrainParams(
        model=resolved(model),
        weight_bits=bits,
        activation_bits=None if svhn else point.get("activation_bits", bits),
        sparsity=float(point.get("sparsity", 0.0)),
        data=_data_source(model.name),
        layer_order=point.get("layer_order", LAYER_ORDERS[0]) if svhn else None,
    )


def resolved(model: BuiltinModel) -> BuiltinModel:
    """`model` with the default of every training setting the spec left out filled in: the
    train step's digest holds the values it trains with, so spelling a default out shares
    the training, and a changed default (or value) trains again."""
    if model.name == "jet_mlp":
        defaults = {k: v for k, v in JET_DEFAULTS.items() if getattr(model, k) is None}
        return dataclasses.replace(model, **defaults)
    config = svhn_config(model)
    return dataclasses.replace(
        model,
        epochs=config.epochs,
        prune_epochs=config.prune_epochs,
        train_samples=config.train_images,
        test_samples=config.test_images,
        batch_size=config.batch_size,
        learning_rate=float(config.learning_rate),
        prune_frequency=config.prune_frequency,
        filters=tuple(config.filters),
        dense=tuple(config.dense),
        image_size=config.input_shape[0],
    )


def pruning_steps(model: BuiltinModel) -> int:
    """Training steps a pruned variant of `model` (resolved) runs with pruning on: svhn_cnn's
    fine-tuning for ``prune_epochs``, jet_mlp's whole training."""
    epochs = model.prune_epochs if model.name == "svhn_cnn" else model.epochs
    assert epochs is not None and model.train_samples and model.batch_size
    return -(-model.train_samples // model.batch_size) * epochs


def _data_source(name: str) -> str:
    if name == "svhn_cnn" and os.environ.get("RTLGEN_SVHN_DIR"):
        return f"svhn:{os.environ['RTLGEN_SVHN_DIR']}"
    return f"synthetic:{name}"


def starts_from(params: TrainParams) -> TrainParams | None:
    """The variant a pruned svhn_cnn variant is fine-tuned from (the study's recipe)."""
    if params.model.name == "svhn_cnn" and params.sparsity > 0:
        return dataclasses.replace(params, sparsity=0.0)
    return None


def train_builtin(params: TrainParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """Train `params`' variant into ``work`` (see the module docstring); its figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if params.model.name == "jet_mlp":
        figures = _train_jet_mlp(params, work)
        (work / TRAINED_FILES["config"]).write_text(f"input: {INPUT_TYPE}\n")
        return figures
    return _train_svhn_cnn(params, work, upstream)


# ---------------------------------------------------------------------------------------
def jet_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic jet-like data: 5 Gaussian classes in 16 correlated features, on the grid
    of fixed<16,6> (benchmarks/bench_jet_mlp.py draws the same kind)."""
    rng = np.random.default_rng(seed)
    classes, features = JET_SIZES[-1], JET_SIZES[0]
    means = rng.normal(0, 1.0, size=(classes, features))
    mixing = rng.normal(0, 1.0, size=(features, features)) / np.sqrt(features)
    labels = rng.integers(0, classes, size=n)
    x = (means[labels] + rng.normal(0, 2.2, size=(n, features))) @ mixing
    x = np.clip(x / np.abs(x).max() * 8, -32, 31.99)
    return (np.round(x * 2**10) / 2**10).astype(np.float32), labels


def _train_jet_mlp(params: TrainParams, work: Path) -> dict[str, Any]:
    from rtlgen.quant.training import layer_sparsity, save_model, train, use_tf_keras

    use_tf_keras()  # before TensorFlow is imported (tf.keras must be Keras 2 for QKeras)
    import tensorflow as tf
    from qkeras import QActivation, QDense

    model_spec = resolved(params.model)
    epochs, n_train, n_test = model_spec.epochs, model_spec.train_samples, model_spec.test_samples
    assert epochs and n_train and n_test and model_spec.batch_size and model_spec.learning_rate
    x, labels = jet_data(n_train + n_test, model_spec.seed)
    tf.keras.utils.set_random_seed(model_spec.seed)
    quantizer = f"quantized_bits({params.weight_bits},0,alpha=1)"
    inputs = tf.keras.Input((JET_SIZES[0],), name="features")
    hidden = inputs
    for index, width in enumerate(JET_SIZES[1:]):
        hidden = QDense(
            width, kernel_quantizer=quantizer, bias_quantizer=quantizer, name=f"dense{index + 1}"
        )(hidden)
        if index < len(JET_SIZES) - 2:
            hidden = QActivation(
                f"quantized_relu({params.activation_bits},0)", name=f"relu{index + 1}"
            )(hidden)
    logits = tf.keras.Model(inputs, hidden, name="jet_mlp")
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("softmax")(hidden))
    train(
        model,
        x[:n_train],
        labels[:n_train],
        epochs=epochs,
        batch_size=model_spec.batch_size,
        prune_sparsity=params.sparsity or None,
        log=None,
        learning_rate=model_spec.learning_rate,
        prune_frequency=model_spec.prune_frequency or JET_DEFAULTS["prune_frequency"],
        seed=model_spec.seed,
    )
    _, keras_accuracy = model.evaluate(x[n_train:], labels[n_train:], verbose=0)
    save_model(logits, work / TRAINED_FILES["model"], work / TRAINED_FILES["weights"])
    np.save(work / TRAINED_FILES["x_test"], x[n_train:])
    np.save(work / TRAINED_FILES["y_test"], labels[n_train:])
    sparsity = layer_sparsity(logits)
    return {
        "keras_accuracy": round(float(keras_accuracy), 4),
        "weight_sparsity": round(float(np.mean(list(sparsity.values()))), 3) if sparsity else 0.0,
    }


def svhn_variant(params: TrainParams):
    """The study's `Variant` of an svhn_cnn train step."""
    from rtlgen.study import Variant

    bits = None if params.weight_bits == FLOAT_BITS else params.weight_bits
    return Variant(bits, params.sparsity, params.layer_order != "pool_first")


def svhn_config(model: BuiltinModel):
    """The study's `StudyConfig` of an svhn_cnn model: the quick study's settings, with what
    the spec sets (epochs, sizes, batch size, learning rate, pruning frequency, architecture,
    seed)."""
    from rtlgen.study import quick_config

    overrides = {
        "epochs": model.epochs,
        "prune_epochs": model.prune_epochs,
        "train_images": model.train_samples,
        "test_images": model.test_samples,
        "batch_size": model.batch_size,
        "learning_rate": model.learning_rate,
        "prune_frequency": model.prune_frequency,
        "filters": model.filters,
        "dense": model.dense,
        "input_shape": None if model.image_size is None else (model.image_size,) * 2 + (3,),
    }
    return dataclasses.replace(
        quick_config(), seed=model.seed, **{k: v for k, v in overrides.items() if v is not None}
    )


def _train_svhn_cnn(params: TrainParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    import json

    from rtlgen.api import load_model
    from rtlgen.quant.reference import quantize_input
    from rtlgen.quant.training import logits_model, save_model
    from rtlgen.study import load_data, precision_config, precision_yaml, train_variant

    config = svhn_config(params.model)
    models = work / "models"
    models.mkdir()
    if upstream is not None:  # the unpruned sibling, trained: train_variant finds it cached
        for path in (upstream / "models").iterdir():
            if path.is_file() and not path.is_symlink():
                shutil.copyfile(path, models / path.name)
    variant = svhn_variant(params)
    data = load_data(config)
    model, record = train_variant(
        variant, config, data, models, log=lambda _line: None, on_epoch=lambda: None
    )
    logits = logits_model(model)
    precision = precision_config(variant, model)
    save_model(logits, work / TRAINED_FILES["model"], work / TRAINED_FILES["weights"])
    (work / TRAINED_FILES["config"]).write_text(precision_yaml(precision))
    np.save(work / TRAINED_FILES["x_test"], data.x_test)
    np.save(work / TRAINED_FILES["y_test"], data.y_test)
    # Keras on the test images quantized to the input type (the values the reference gets)
    graph = load_model(logits, config=precision)
    x_q = graph.input.out_type.to_float(quantize_input(graph, data.x_test)).astype(np.float32)
    y_keras = np.asarray(logits.predict(x_q, batch_size=256, verbose=0)).reshape(len(x_q), -1)
    np.save(work / KERAS_LOGITS, y_keras)
    (work / "data.json").write_text(
        json.dumps({"source": data.source, "note": data.note, "train_images": len(data.y_train)})
    )
    sparsity = record.get("sparsity_quantized") or {}
    return {
        "keras_accuracy": round(float(np.mean(np.argmax(y_keras, 1) == data.y_test)), 4),
        "weight_sparsity": round(float(np.mean(list(sparsity.values()))), 3) if sparsity else 0.0,
        "train_epochs": record.get("epochs"),
        "train_seconds": record.get("seconds"),
        "variant": variant.key,
    }
