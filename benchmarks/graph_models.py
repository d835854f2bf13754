"""Keras/QKeras networks of the kinds issue 14 names, for benchmarks/bench_graphs.py: a
residual CNN, an inception-style concat CNN, a MobileNet-style depthwise/separable CNN, a
deep-sets model on (particles x features), a convolutional autoencoder with upsampling and an
MLP mixing the new activations. Random weights (nothing is trained); TensorFlow is imported
inside the builders."""

from __future__ import annotations

from typing import Any

Q4 = {"kernel_quantizer": "quantized_bits(4,0,alpha=1)", "bias_quantizer": "quantized_bits(4,0,alpha=1)"}


def _keras():
    import tensorflow as tf

    return tf, tf.keras.layers


def residual_cnn(size: int = 16, channels: int = 8, blocks: int = 2) -> Any:
    import qkeras as q

    tf, L = _keras()
    tf.keras.utils.set_random_seed(0)
    x = L.Input((size, size, 3), name="x")
    h = q.QConv2D(channels, 3, padding="same", activation="quantized_relu(6,2)", name="stem", **Q4)(x)
    for b in range(blocks):
        r = q.QConv2D(channels, 3, padding="same", activation="quantized_relu(6,2)", name=f"b{b}_c1", **Q4)(h)
        r = q.QConv2D(channels, 3, padding="same", name=f"b{b}_c2", **Q4)(r)
        r = q.QActivation("quantized_bits(8,3)", name=f"b{b}_q")(r)
        h = L.Add(name=f"b{b}_add")([h, r])
        h = q.QActivation("quantized_relu(6,2)", name=f"b{b}_relu")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    out = q.QDense(10, name="logits", **Q4)(h)
    return tf.keras.Model(x, out, name="residual_cnn")


def inception_cnn(size: int = 16, channels: int = 4) -> Any:
    import qkeras as q

    tf, L = _keras()
    tf.keras.utils.set_random_seed(1)
    x = L.Input((size, size, 3), name="x")
    act = {"activation": "quantized_relu(6,2)"}
    b1 = q.QConv2D(channels, 1, name="b1", **act, **Q4)(x)
    b3 = q.QConv2D(channels, 3, padding="same", name="b3", **act, **Q4)(x)
    b5 = q.QConv2D(channels, 3, padding="same", name="b5a", **act, **Q4)(x)
    b5 = q.QConv2D(channels, 3, padding="same", name="b5b", **act, **Q4)(b5)
    bp = L.MaxPooling2D(3, strides=1, padding="same", name="bp")(x)
    bp = q.QConv2D(channels, 1, name="bp_c", **act, **Q4)(bp)
    h = L.Concatenate(name="cat")([b1, b3, b5, bp])
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    out = q.QDense(10, name="logits", **Q4)(h)
    return tf.keras.Model(x, out, name="inception_cnn")


def mobilenet_cnn(size: int = 16, channels: int = 8) -> Any:
    import qkeras as q

    tf, L = _keras()
    tf.keras.utils.set_random_seed(2)
    x = L.Input((size, size, 3), name="x")
    h = q.QConv2D(channels, 3, strides=2, padding="same", activation="quantized_relu(6,2)", name="stem", **Q4)(x)
    h = q.QDepthwiseConv2D(3, padding="same", depthwise_quantizer="quantized_bits(4,0,alpha=1)",
                           bias_quantizer="quantized_bits(4,0,alpha=1)", name="dw1")(h)
    h = q.QActivation("quantized_relu(6,2)", name="dw1_relu")(h)
    h = q.QConv2D(2 * channels, 1, activation="quantized_relu(6,2)", name="pw1", **Q4)(h)
    h = q.QSeparableConv2D(2 * channels, 3, padding="same", depthwise_quantizer="quantized_bits(4,0,alpha=1)",
                           pointwise_quantizer="quantized_bits(4,0,alpha=1)",
                           bias_quantizer="quantized_bits(4,0,alpha=1)", name="sep2")(h)
    h = q.QActivation("quantized_relu(6,2)", name="sep2_relu")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    out = q.QDense(10, name="logits", **Q4)(h)
    return tf.keras.Model(x, out, name="mobilenet_cnn")


def deep_sets(particles: int = 16, features: int = 6) -> Any:
    import qkeras as q

    tf, L = _keras()
    tf.keras.utils.set_random_seed(3)
    x = L.Input((particles, features), name="x")
    h = q.QDense(16, activation="quantized_relu(6,2)", name="phi1", **Q4)(x)
    h = q.QDense(16, activation="quantized_relu(6,2)", name="phi2", **Q4)(h)
    h = L.GlobalAveragePooling1D(name="pool")(h)
    h = q.QDense(16, activation="quantized_relu(6,2)", name="rho1", **Q4)(h)
    out = q.QDense(5, name="logits", **Q4)(h)
    return tf.keras.Model(x, out, name="deep_sets")


def autoencoder(size: int = 16) -> Any:
    import qkeras as q

    tf, L = _keras()
    tf.keras.utils.set_random_seed(4)
    x = L.Input((size, size, 1), name="x")
    h = q.QConv2D(4, 3, padding="same", activation="quantized_relu(6,2)", name="enc1", **Q4)(x)
    h = L.MaxPooling2D(2, name="down")(h)
    h = q.QConv2D(4, 3, padding="same", activation="quantized_relu(6,2)", name="enc2", **Q4)(h)
    h = L.UpSampling2D(2, name="up")(h)
    out = q.QConv2D(1, 3, padding="same", name="dec", **Q4)(h)
    return tf.keras.Model(x, out, name="autoencoder")


def transpose_autoencoder(size: int = 16) -> Any:
    """A strided encoder and a QConv2DTranspose decoder (QKeras 0.9's transposed conv calls
    ``array_ops.stack``, which TensorFlow 2.15 moved: patched here, for QKeras only)."""
    import qkeras as q
    from tensorflow.python.ops import array_ops

    tf, L = _keras()
    array_ops.stack = getattr(array_ops, "stack", tf.stack)
    tf.keras.utils.set_random_seed(6)
    x = L.Input((size, size, 1), name="x")
    h = q.QConv2D(4, 3, strides=2, padding="same", activation="quantized_relu(6,2)", name="enc", **Q4)(x)
    h = q.QConv2DTranspose(4, 4, strides=2, padding="same", name="dec1", **Q4)(h)
    h = q.QActivation("quantized_relu(6,2)", name="dec1_relu")(h)
    out = q.QConv2D(1, 3, padding="same", name="dec2", **Q4)(h)
    return tf.keras.Model(x, out, name="transpose_autoencoder")


def activations_mlp(inputs: int = 16) -> Any:
    tf, L = _keras()
    tf.keras.utils.set_random_seed(5)
    x = L.Input((inputs,), name="x")
    h = L.Dense(32, activation="sigmoid", name="d1")(x)
    h = L.Dense(32, name="d2")(h)
    h = L.LeakyReLU(0.125, name="leaky")(h)
    h = L.Dense(16, activation="tanh", name="d3")(h)
    h = L.Dense(16, name="d4")(h)
    h = L.PReLU(name="prelu")(h)
    out = L.Dense(5, name="logits")(h)
    return tf.keras.Model(x, out, name="activations_mlp")


MODELS = {
    "residual_cnn": residual_cnn,
    "inception_cnn": inception_cnn,
    "mobilenet_cnn": mobilenet_cnn,
    "deep_sets": deep_sets,
    "autoencoder": autoencoder,
    "transpose_autoencoder": transpose_autoencoder,
    "activations_mlp": activations_mlp,
}
