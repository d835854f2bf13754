"""Golden files of HGQ (v1) proxy models: ``<name>.h5`` (``HGQ.proxy.to_proxy_model(model)
.save(...)``, the Keras-2 file hls4ml's HGQ examples use) and ``<name>.npz`` (``x``: float32
inputs on a 2**-6 grid, some beyond the calibrated range so that WRAP/SAT act; ``y``: the
proxy model's own ``predict``).

Run in a separate venv (not the project's): Python 3.11 +
``pip install "tensorflow-cpu==2.15.1" "numpy==1.26.4" "HGQ==0.2.6" h5py``, then
``python tests/data/hgq1/make_models.py [OUTDIR]``. Widths are seeded random integers set
after build (per element for activations, per weight for kernels, a few 0 = pruned), then
HGQ's ``trace_minmax`` sets the integer bits from calibration data, as after training.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from HGQ import (  # noqa: E402
    HConv1D,
    HConv2D,
    HConv2DBatchNorm,
    HDense,
    HDenseBatchNorm,
    HQuantize,
    trace_minmax,
)
from HGQ.layers import HAdd, PFlatten, PMaxPooling2D  # noqa: E402
from HGQ.proxy import to_proxy_model  # noqa: E402

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent


def randomize(model: tf.keras.Model, rng: np.random.Generator, act=(0, 6), kernel=(0, 8)) -> None:
    """Random integer fractional widths: activations per element, kernels per weight."""
    for layer in model.layers:
        paq = getattr(layer, "paq", None)
        if paq is not None:
            paq.fbw.assign(rng.integers(*act, size=paq.fbw.shape, endpoint=True).astype("float32"))
        kq = getattr(layer, "kq", None)
        if kq is not None:
            kq.fbw.assign(rng.integers(*kernel, size=kq.fbw.shape, endpoint=True).astype("float32"))


def grid(rng: np.random.Generator, shape, n: int, scale: float) -> np.ndarray:
    return (np.round(rng.normal(size=(n, *shape)) * scale * 64) / 64).astype("float32")


def mlp(wide: bool = False) -> tf.keras.Model:
    inp = tf.keras.Input((10,))
    x = HQuantize(beta=0)(inp)
    x = HDense(16, activation="relu", beta=0)(x)
    x = HDense(8, activation="relu", beta=0)(x)
    x = HDense(5, beta=0)(x)
    return tf.keras.Model(inp, x)


def cnn() -> tf.keras.Model:
    inp = tf.keras.Input((8, 7, 2))
    x = HQuantize(beta=0)(inp)
    x = HConv2D(4, (3, 3), activation="relu", beta=0)(x)
    x = PMaxPooling2D((2, 2))(x)
    x = PFlatten()(x)
    x = HDense(5, beta=0)(x)
    return tf.keras.Model(inp, x)


def conv1d_bn() -> tf.keras.Model:
    inp = tf.keras.Input((9, 3))
    x = HQuantize(beta=0)(inp)
    x = HConv1D(4, 3, activation="relu", beta=0)(x)
    x = PFlatten()(x)
    x = HDenseBatchNorm(6, activation="relu", beta=0)(x)
    x = HDense(3, beta=0)(x)
    return tf.keras.Model(inp, x)


def residual_bn() -> tf.keras.Model:
    inp = tf.keras.Input((6, 5, 2))
    q = HQuantize(beta=0)(inp)
    x = HConv2DBatchNorm(3, (3, 3), padding="same", activation="relu", beta=0)(q)
    x = HConv2D(2, (3, 3), padding="same", beta=0)(x)
    x = HAdd(beta=0)([q, x])
    x = PFlatten()(x)
    x = HDense(4, beta=0)(x)
    return tf.keras.Model(inp, x)


# name -> (builder, input shape, aggressive (WRAP) or SAT, kernel fractional widths)
MODELS = {
    "mlp_wrap": (mlp, (10,), True, (0, 8)),
    "mlp_sat": (mlp, (10,), False, (0, 8)),
    "mlp_wide_weights": (mlp, (10,), True, (10, 20)),
    "cnn2d": (cnn, (8, 7, 2), True, (0, 6)),
    "conv1d_bn": (conv1d_bn, (9, 3), False, (0, 7)),
    "residual_bn": (residual_bn, (6, 5, 2), True, (0, 6)),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for index, (name, (build, shape, aggressive, kernel)) in enumerate(MODELS.items()):
        tf.keras.utils.set_random_seed(100 + index)
        rng = np.random.default_rng(100 + index)
        model = build()
        for bn in [layer for layer in model.layers if hasattr(layer, "moving_variance")]:
            # non-trivial BN statistics, as after training
            bn.moving_mean.assign(rng.normal(size=bn.moving_mean.shape).astype("float32"))
            bn.moving_variance.assign(
                rng.uniform(0.5, 2, size=bn.moving_variance.shape).astype("float32")
            )
        randomize(model, rng, kernel=kernel)
        trace_minmax(model, grid(rng, shape, 512, 2.0), verbose=False)
        proxy = to_proxy_model(model, aggressive=aggressive)
        proxy.save(OUT / f"{name}.h5")
        x = grid(rng, shape, 300, 3.0)  # wider than the calibration: overflows happen
        y = proxy.predict(x, verbose=0)
        np.savez_compressed(OUT / f"{name}.npz", x=x, y=y)
        print(name, proxy.count_params(), "params", y.shape)


if __name__ == "__main__":
    main()
