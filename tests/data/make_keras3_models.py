"""Write the Keras 3 test models and Keras's own outputs on fixed-point inputs
(tests/data/keras3/).

Run in the oracle venv (Python 3.12, ``pip install -e '.[keras3]'``)::

    KERAS_BACKEND=jax python tests/data/make_keras3_models.py [OUTDIR]

Every model is written as a ``.keras`` v3 archive (``config.json``, ``metadata.json``,
``model.weights.h5``); ``seq_mlp`` and ``func_cnn`` also as ``to_json()`` +
``save_weights("*.weights.h5")``. ``NAME_expected.npz`` holds ``x`` (exact in
``fixed<16,6>``: multiples of 1/16 in [-4, 4)) and ``y`` = ``model.predict(x)`` (float32).
tests/rtlgen/test_keras3.py reads them; with Keras 3 importable (or RTLGEN_KERAS3_PYTHON /
/work/venv-hgq2/bin/python present) it writes them again and compares live.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

SEED = 4321


def fixed_inputs(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(-64, 64, size=(n, *shape)) / 16).astype(np.float32)


def seq_mlp():
    """Sequential with an InputLayer(batch_shape=...), ReLU and a linear head."""
    import keras

    return keras.Sequential(
        [
            keras.layers.InputLayer(batch_shape=(None, 10), name="x"),
            keras.layers.Dense(8, activation="relu", name="fc1"),
            keras.layers.Dense(6, activation="relu6", name="fc2"),
            keras.layers.Dense(4, name="head"),
        ],
        name="seq_mlp",
    )


def seq_no_input():
    """Sequential built without an InputLayer (the shape is in build_config)."""
    import keras

    model = keras.Sequential(
        [keras.layers.Dense(5, activation="relu", name="fc"), keras.layers.Dense(3, name="out")],
        name="seq_no_input",
    )
    model.build((None, 7))
    return model


def func_cnn():
    """Functional: a fork into two convolutions joined by Add, BatchNormalization, a
    Concatenate of the join with the fork's source, pooling, Flatten, Dense."""
    import keras
    from keras import layers

    inp = keras.Input((8, 8, 3), name="x")
    stem = layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inp)
    a = layers.Conv2D(4, 3, padding="same", name="branch_a")(stem)
    b = layers.Conv2D(4, 1, name="branch_b")(stem)
    joined = layers.Add(name="add")([a, b])
    joined = layers.BatchNormalization(name="bn")(joined)
    joined = layers.ReLU(name="relu")(joined)
    cat = layers.Concatenate(name="cat")([joined, stem])
    pooled = layers.MaxPooling2D(2, name="pool")(cat)
    flat = layers.Flatten(name="flat")(pooled)
    out = layers.Dense(5, name="head")(flat)
    return keras.Model(inp, out, name="func_cnn")


def func_conv1d():
    """Functional 1D: Conv1D, Average of two branches, GlobalAveragePooling1D."""
    import keras
    from keras import layers

    inp = keras.Input((12, 2), name="x")
    h = layers.Conv1D(6, 3, activation="relu", name="c1")(inp)
    a = layers.Conv1D(6, 3, padding="same", name="c2a")(h)
    b = layers.Dense(6, name="c2b")(h)  # a Dense on a sequence: per position
    h = layers.Average(name="avg")([a, b])
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    return keras.Model(inp, layers.Dense(3, name="head")(h), name="func_conv1d")


def seq_int8():
    """seq_mlp after Keras 3's post-training ``model.quantize("int8")``: int8 kernels with
    float scales (QuantizedDTypePolicy), which rtlgen refuses in one line."""
    model = seq_mlp()
    model.quantize("int8")
    return model


MODELS = {
    "seq_mlp": (seq_mlp, (10,)),
    "seq_no_input": (seq_no_input, (7,)),
    "func_cnn": (func_cnn, (8, 8, 3)),
    "func_conv1d": (func_conv1d, (12, 2)),
}
#: models rtlgen refuses (no expected outputs)
REFUSED = {"seq_int8": seq_int8}
#: models also written as to_json() + save_weights("*.weights.h5")
JSON_MODELS = ("seq_mlp", "func_cnn")


def build(name: str):
    import keras

    keras.utils.set_random_seed(SEED + sorted(MODELS).index(name))
    model = MODELS[name][0]()
    rng = np.random.default_rng(SEED)
    for layer in model.layers:  # BatchNormalization statistics that do something
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.3, c).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.3, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
    return model


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for name, (_, shape) in MODELS.items():
        model = build(name)
        model.save(outdir / f"{name}.keras")
        if name in JSON_MODELS:
            (outdir / f"{name}.json").write_text(model.to_json())
            model.save_weights(outdir / f"{name}.weights.h5")
        x = fixed_inputs(shape, 32, 11)
        y = np.asarray(model.predict(x, verbose=0))
        np.savez_compressed(outdir / f"{name}_expected.npz", x=x, y=y)
        print(f"{name}: {model.count_params()} parameters")
    for name, make in REFUSED.items():
        make().save(outdir / f"{name}.keras")
        print(f"{name}: refused by rtlgen")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "keras3")
