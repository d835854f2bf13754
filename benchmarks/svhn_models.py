"""SVHN-size CNN files for benchmarks: the paper's architecture with random weights
(magnitude-pruned to a given sparsity), saved as model.json + weights.h5. Building needs
TensorFlow/QKeras (`pip install '.[train]'`); the files are cached under benchmarks/results/."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CACHE = Path(__file__).parent / "results" / "models"


def svhn_model_files(bits: int = 6, sparsity: float = 0.0, bn_before_pool: bool = False,
                     seed: int = 0) -> tuple[Path, Path]:
    """(json, weights) of a random-weight SVHN CNN; pruned by zeroing the smallest kernels."""
    stem = CACHE / f"svhn_b{bits}_s{int(sparsity * 100)}_bn{int(bn_before_pool)}_seed{seed}"
    json_path, weights_path = stem.with_suffix(".json"), stem.with_name(stem.name + "_weights.h5")
    if json_path.is_file() and weights_path.is_file():
        return json_path, weights_path
    import tensorflow as tf

    from rtlgen.quant.training import build_svhn_cnn, save_model

    tf.keras.utils.set_random_seed(seed)
    model = build_svhn_cnn(bits=bits, bn_before_pool=bn_before_pool)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if "batch_normalization" in type(layer).__name__.lower() or "BatchNormalization" in type(layer).__name__:
            gamma, beta, mean, var = weights
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
            continue
        kernel = weights[0]
        if sparsity > 0:
            cut = np.quantile(np.abs(kernel), sparsity)
            kernel = np.where(np.abs(kernel) <= cut, 0.0, kernel)
        layer.set_weights([kernel, *weights[1:]])
    CACHE.mkdir(parents=True, exist_ok=True)
    save_model(model, json_path, weights_path)
    return json_path, weights_path
