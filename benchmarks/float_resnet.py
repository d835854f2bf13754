"""A float Keras ResNet-v1 for 32x32x3 images (MLPerf Tiny's resnet_v1_eembc layout): a 3x3
conv of 16 filters, then one residual block per stage of 16, 32 and 64 filters (3x3 convs,
BN after every conv, a 1x1 conv shortcut where the stride is 2), 8x8 average pooling and a
10-way dense softmax. Random weights and BN statistics (not trained): for conversion time
and size, the case issue 14 could not convert (`bench_convert_speed.py float_resnet_v1`).
Needs TensorFlow (imported when called).

    python benchmarks/float_resnet.py resnet_v1.h5
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def float_resnet(path: Path, seed: int = 0) -> Path:
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)

    def block(x, filters: int, stride: int):
        y = layers.Conv2D(filters, 3, strides=stride, padding="same")(x)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(filters, 3, padding="same")(y)
        y = layers.BatchNormalization()(y)
        if stride != 1:
            x = layers.Conv2D(filters, 1, strides=stride, padding="same")(x)
        return layers.Activation("relu")(layers.Add()([x, y]))

    inputs = tf.keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same")(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        x = block(x, filters, stride)
    x = layers.Flatten()(layers.AveragePooling2D(pool_size=8)(x))
    outputs = layers.Dense(10, activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs, name="resnet_v1")
    for layer in model.layers:  # BN statistics as a trained model has them
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n),
            ])  # fmt: skip
    model.save(path)
    return Path(path)


if __name__ == "__main__":
    float_resnet(Path(sys.argv[1]))
