"""Write the Keras 3 test models and Keras's own outputs on fixed-point inputs
(tests/data/keras3/).

Run in the oracle venv (Python 3.12, ``pip install -e '.[keras3]'``)::

    KERAS_BACKEND=jax python tests/data/make_keras3_models.py [OUTDIR [NAME ...]]

Every model is written as a ``.keras`` v3 archive (``config.json``, ``metadata.json``,
``model.weights.h5``); ``seq_mlp`` and ``func_cnn`` also as ``to_json()`` +
``save_weights("*.weights.h5")``; so are the recurrent ``rnn_lstm`` and ``rnn_gru_v1_stack``
(tests/rtlgen/test_keras3_recurrent.py); ``func_layers_1d`` and ``rnn_lstm`` also as Keras 3's
legacy ``.h5`` (and ``rnn_lstm_tagger``, whose TimeDistributed Dense layers keep their
weights in the wrapper's ``layer``). ``NAME_expected.npz`` holds ``x`` (exact in
``fixed<16,6>``: multiples of 1/16 in [-4, 4)) and ``y`` = ``model.predict(x)`` (float32).
tests/rtlgen/test_keras3.py reads them; with Keras 3 importable (or RTLGEN_KERAS3_PYTHON /
/work/venv-hgq2/bin/python present) it writes them again and compares live.
"""

from __future__ import annotations

import os
import sys
import zlib
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


def func_layers_2d():
    """Functional 2D layer kinds beyond func_cnn: Keras 3's Identity and image augmentations
    (identities at inference), ZeroPadding2D, DepthwiseConv2D (depth_multiplier 2),
    LeakyReLU (Keras 3's negative_slope), SeparableConv2D, PReLU (per channel), Maximum and Subtract
    joins, AveragePooling2D with 'same' padding and stride 2, UpSampling2D, Cropping2D,
    ReLU(max_value), GlobalMaxPooling2D, Dense."""
    import keras
    from keras import layers

    inp = keras.Input((8, 8, 3), name="x")
    h = layers.RandomFlip(name="flip")(inp)
    h = layers.RandomContrast(0.2, name="contrast")(h)
    h = layers.Identity(name="identity")(h)
    h = layers.ZeroPadding2D(((1, 0), (0, 1)), name="pad")(h)
    h = layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(h)
    h = layers.LeakyReLU(negative_slope=0.1, name="leaky")(h)
    a = layers.SeparableConv2D(4, 3, padding="same", name="sep")(h)
    b = layers.PReLU(shared_axes=[1, 2], name="prelu")(layers.Conv2D(4, 1, name="pw")(h))
    h = layers.Subtract(name="sub")([layers.Maximum(name="max")([a, b]), b])
    h = layers.AveragePooling2D(3, strides=2, padding="same", name="avg")(h)
    h = layers.UpSampling2D(2, name="up")(h)
    h = layers.Cropping2D(((1, 1), (2, 0)), name="crop")(h)
    h = layers.ReLU(max_value=4.0, name="relu4")(h)
    h = layers.GlobalMaxPooling2D(name="gmp")(h)
    return keras.Model(inp, layers.Dense(3, name="head")(h), name="func_layers_2d")


def func_activations():
    """Keras 3's silu and gelu strings (the erf GELU) as a Conv2D's activation, an
    Activation layer and a Dense's; PReLU with an alpha per element (shared_axes=None) and
    shared along H (an alpha per column and channel)."""
    import keras
    from keras import layers

    inp = keras.Input((6, 5, 2), name="x")
    h = layers.Conv2D(3, 3, activation="silu", name="conv")(inp)
    h = layers.PReLU(name="prelu")(h)
    h = layers.Activation("gelu", name="gelu")(h)
    h = layers.Conv2D(4, 1, name="pw")(h)
    h = layers.PReLU(shared_axes=[1], name="prelu_w")(h)
    h = layers.Flatten(name="flat")(h)
    return keras.Model(
        inp, layers.Dense(3, activation="silu", name="head")(h), name="func_activations"
    )


def func_layers_1d():
    """Functional 1D layer kinds: ZeroPadding1D, DepthwiseConv1D, Keras 3's hard_sigmoid
    (relu6(x + 3) / 6) as an Activation layer, SeparableConv1D, MaxPooling1D with 'same'
    padding, UpSampling1D, Cropping1D, Minimum and Multiply joins, Reshape with -1, Flatten,
    Dense."""
    import keras
    from keras import layers

    inp = keras.Input((10, 3), name="x")
    h = layers.ZeroPadding1D((1, 2), name="pad")(inp)
    h = layers.DepthwiseConv1D(3, depth_multiplier=2, name="dw")(h)
    h = layers.Activation("hard_sigmoid", name="hsig")(h)
    a = layers.SeparableConv1D(4, 3, padding="same", name="sep")(h)
    b = layers.Conv1D(4, 1, name="pw")(h)
    h = layers.Multiply(name="mul")([layers.Minimum(name="min")([a, b]), b])
    h = layers.MaxPooling1D(3, strides=2, padding="same", name="pool")(h)
    h = layers.UpSampling1D(2, name="up")(h)
    h = layers.Cropping1D((1, 1), name="crop")(h)
    h = layers.Reshape((-1, 8), name="reshape")(h)
    h = layers.Flatten(name="flat")(h)
    return keras.Model(inp, layers.Dense(2, name="head")(h), name="func_layers_1d")


def func_decoder():
    """A convolutional decoder: Conv2DTranspose 'same' (stride 2, ReLU), Conv2DTranspose
    'valid' (4x4, stride 2), a Conv1DTranspose branch on a reshaped row joined by Add
    after flattening."""
    import keras
    from keras import layers

    inp = keras.Input((3, 3, 2), name="x")
    h = layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu", name="up1")(inp)
    h = layers.Conv2DTranspose(2, 4, strides=2, padding="valid", name="up2")(h)
    a = layers.Flatten(name="flat_a")(layers.Conv2D(1, 3, strides=2, name="down")(h))
    row = layers.Reshape((9, 2), name="row")(inp)
    b = layers.Conv1DTranspose(2, 3, strides=2, padding="same", output_padding=1, name="up1d")(row)
    b = layers.Flatten(name="flat_b")(layers.Conv1D(2, 1, name="pw1d")(b))
    return keras.Model(inp, layers.Add(name="add")([a, b]), name="func_decoder")


def func_preprocess():
    """Preprocessing layers that are a scale and shift per channel: Rescaling, an adapted
    Normalization (weights mean, variance, count), a Normalization given one mean and
    variance for all channels (axis=None) and one given per-channel lists with invert=True,
    around a Conv2D."""
    import keras
    from keras import layers

    inp = keras.Input((6, 6, 3), name="x")
    h = layers.Rescaling(0.5, offset=0.25, name="rescale")(inp)
    norm = layers.Normalization(name="norm")
    rng = np.random.default_rng(SEED)
    norm.adapt(rng.normal([0.5, -1.0, 2.0], [1.0, 2.0, 0.5], (64, 6, 6, 3)).astype(np.float32))
    h = layers.Conv2D(4, 3, name="conv")(norm(h))
    h = layers.Normalization(axis=None, mean=0.5, variance=4.0, name="scalar_norm")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    h = layers.Normalization(
        mean=[1.0, 2.0, -3.0, 0.5], variance=[1.0, 4.0, 0.25, 2.0], invert=True, name="denorm"
    )(h)
    return keras.Model(inp, layers.Dense(2, name="head")(h), name="func_preprocess")


# ---------------------------------------------------------------------------------------
# recurrent layers (weights in ``layers/<lstm>/cell/vars/<i>``), each with a Dense head
# ---------------------------------------------------------------------------------------
def rnn_simple_seq():
    """SimpleRNN returning the sequence, a Dense applied per time step."""
    import keras
    from keras import layers

    inp = keras.Input((8, 3), name="x")
    h = layers.SimpleRNN(5, return_sequences=True, name="rnn")(inp)
    return keras.Model(inp, layers.Dense(2, name="head")(h), name="rnn_simple_seq")


def rnn_lstm():
    """Sequential LSTM (last state only) and a Dense head."""
    import keras

    return keras.Sequential(
        [
            keras.layers.InputLayer(batch_shape=(None, 8, 3), name="x"),
            keras.layers.LSTM(6, name="lstm"),
            keras.layers.Dense(3, name="head"),
        ],
        name="rnn_lstm",
    )


def rnn_lstm_seq():
    """LSTM returning the sequence with Keras 3's hard_sigmoid (relu6(x + 3) / 6) as the
    recurrent activation, Flatten, Dense."""
    import keras
    from keras import layers

    inp = keras.Input((6, 2), name="x")
    h = layers.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid", name="lstm")(inp)
    h = layers.Flatten(name="flat")(h)
    return keras.Model(inp, layers.Dense(3, name="head")(h), name="rnn_lstm_seq")


def rnn_gru():
    """GRU with reset_after=True (Keras's default: two bias rows), last state, Dense."""
    import keras
    from keras import layers

    inp = keras.Input((8, 3), name="x")
    h = layers.GRU(5, name="gru")(inp)
    return keras.Model(inp, layers.Dense(3, name="head")(h), name="rnn_gru")


def rnn_gru_v1_stack():
    """GRU with reset_after=False returning the sequence into a second recurrent layer (an
    LSTM), Dense."""
    import keras
    from keras import layers

    inp = keras.Input((7, 2), name="x")
    h = layers.GRU(4, reset_after=False, return_sequences=True, name="gru")(inp)
    h = layers.LSTM(3, name="lstm")(h)
    return keras.Model(inp, layers.Dense(2, name="head")(h), name="rnn_gru_v1_stack")


def rnn_lstm_tagger():
    """A tagger: LSTM returning the sequence, TimeDistributed Dense layers on every step."""
    import keras
    from keras import layers

    inp = keras.Input((8, 3), name="x")
    h = layers.LSTM(5, return_sequences=True, name="lstm")(inp)
    bias = keras.initializers.RandomUniform(-0.5, 0.5)
    h = layers.TimeDistributed(
        layers.Dense(4, activation="relu", bias_initializer=bias), name="td_hidden"
    )(h)
    out = layers.TimeDistributed(layers.Dense(2, bias_initializer=bias), name="td_out")(h)
    return keras.Model(inp, out, name="rnn_lstm_tagger")


def rnn_lstm_bidirectional():
    """A Bidirectional LSTM: rtlgen refuses it in one line."""
    import keras
    from keras import layers

    inp = keras.Input((5, 2), name="x")
    h = layers.Bidirectional(layers.LSTM(3), name="bidi")(inp)
    return keras.Model(inp, layers.Dense(2, name="head")(h), name="rnn_lstm_bidirectional")


def rnn_gru_backwards():
    """A GRU running the sequence backwards: refused in one line."""
    import keras
    from keras import layers

    inp = keras.Input((5, 2), name="x")
    h = layers.GRU(3, go_backwards=True, name="gru")(inp)
    return keras.Model(inp, layers.Dense(2, name="head")(h), name="rnn_gru_backwards")


def func_nested():
    """Models used as layers: a Functional conv backbone and a Sequential head block (with
    its own InputLayer) inside a Functional, a Sequential block without an InputLayer
    inside that Sequential (nested two deep): rtlgen inlines their layers."""
    import keras
    from keras import layers

    b_in = keras.Input((6, 6, 2), name="b_in")
    b = layers.Conv2D(4, 3, activation="relu", name="b_conv")(b_in)
    backbone = keras.Model(b_in, layers.MaxPooling2D(2, name="b_pool")(b), name="backbone")
    inner = keras.Sequential(
        [layers.Dense(6, activation="relu", name="i_fc"), layers.Dense(5, name="i_out")],
        name="inner",
    )
    block = keras.Sequential(
        [
            keras.layers.InputLayer(shape=(16,), name="h_in"),
            layers.Dense(8, activation="relu", name="h_fc"),
            inner,
        ],
        name="block",
    )
    inp = keras.Input((6, 6, 2), name="x")
    h = layers.Flatten(name="flat")(backbone(inp))
    return keras.Model(inp, layers.Dense(3, name="head")(block(h)), name="func_nested")


def func_se():
    """A squeeze-and-excitation block: Conv2D -> GlobalAveragePooling2D(keepdims=True) ->
    Dense(relu) -> Dense(hard_sigmoid, Keras 3's relu6(x + 3) / 6) -> Multiply with the
    conv's map (a (1, 1, C) operand broadcast over the image), then a residual Add."""
    import keras
    from keras import layers

    inp = keras.Input((5, 3, 4), name="x")
    c = layers.Conv2D(4, 1, activation="relu", name="conv")(inp)
    s = layers.GlobalAveragePooling2D(keepdims=True, name="gap")(c)
    s = layers.Dense(2, activation="relu", name="fc1")(s)
    s = layers.Dense(4, activation="hard_sigmoid", name="fc2")(s)
    y = layers.Multiply(name="scale")([c, s])
    return keras.Model(inp, layers.Add(name="skip")([y, inp]), name="func_se")


def func_broadcast_1d():
    """A sequence minus a Dense of its global average as a (C,) vector (Keras 3 reads the
    lower rank with a leading axis of 1), times one channel of it (L, 1)."""
    import keras
    from keras import layers

    inp = keras.Input((7, 3), name="x")
    mean = layers.Dense(3, name="fc")(layers.GlobalAveragePooling1D(name="gap")(inp))
    centred = layers.Subtract(name="centre")([inp, mean])
    gate = layers.Conv1D(1, 1, activation="sigmoid", name="gate")(inp)
    return keras.Model(inp, layers.Multiply(name="gated")([gate, centred]), name="func_broadcast_1d")


def func_activations_v3():
    """Keras 3's hard_silu (as ``hard_swish``, an Activation layer, and ``hard_silu``, a
    Dense's), mish and exponential, side by side on the input, concatenated."""
    import keras
    from keras import layers

    inp = keras.Input((16,), name="x")
    branches = [
        layers.Activation("hard_swish", name="hswish")(inp),
        layers.Activation("mish", name="mish")(inp),
        layers.Activation("exponential", name="exp")(inp),
        layers.Dense(4, activation="hard_silu", name="fc")(inp),
    ]
    return keras.Model(inp, layers.Concatenate(name="cat")(branches), name="func_activations_v3")


def func_mobilenet_v3():
    """A MobileNetV3-Small-like network on 16x16x3: a stride-2 conv stem with BN and
    hard_swish; an inverted residual block (1x1 expansion + BN + hard_swish, 3x3 depthwise +
    BN + relu, squeeze-and-excitation: GlobalAveragePooling2D(keepdims) -> Conv2D 1x1 relu
    -> Conv2D 1x1 hard_sigmoid -> Multiply, 1x1 projection + BN, residual Add); a 1x1 conv
    with hard_swish, a GAP head and a Dense classifier."""
    import keras
    from keras import layers

    inp = keras.Input((16, 16, 3), name="x")
    h = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)
    h = layers.BatchNormalization(name="stem_bn")(h)
    h = layers.Activation("hard_swish", name="stem_hswish")(h)
    e = layers.Conv2D(16, 1, use_bias=False, name="expand")(h)
    e = layers.BatchNormalization(name="expand_bn")(e)
    e = layers.Activation("hard_swish", name="expand_hswish")(e)
    d = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(e)
    d = layers.BatchNormalization(name="dw_bn")(d)
    d = layers.ReLU(name="dw_relu")(d)
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_gap")(d)
    s = layers.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = layers.Conv2D(16, 1, activation="hard_sigmoid", name="se_expand")(s)
    d = layers.Multiply(name="se_scale")([d, s])
    p = layers.Conv2D(8, 1, use_bias=False, name="project")(d)
    p = layers.BatchNormalization(name="project_bn")(p)
    h = layers.Add(name="residual")([h, p])
    h = layers.Conv2D(16, 1, activation="hard_swish", name="last_conv")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(inp, layers.Dense(5, name="classifier")(h), name="func_mobilenet_v3")


def func_tensor_ops():
    """Operations of a tensor and a number, as keras.applications' MobileNetV3 writes its
    hard_sigmoid (``ReLU(6.0)(x + 3.0) * (1.0 / 6.0)``), a hard swish of them (Multiply),
    and ``2.0 - x``, ``x / 4.0``, ``x - 0.5``, ``2 * x``."""
    import keras
    from keras import layers

    inp = keras.Input((6, 6, 3), name="x")
    h = layers.Conv2D(4, 3, name="conv")(inp)
    gate = layers.ReLU(6.0, name="relu6")(h + 3.0) * (1.0 / 6.0)
    h = layers.Multiply(name="hswish")([h, gate])
    h = layers.Conv2D(4, 1, name="pw")((2.0 - h) / 4.0)
    return keras.Model(inp, 2 * (h - 0.5), name="func_tensor_ops")


MODELS = {
    "seq_mlp": (seq_mlp, (10,)),
    "seq_no_input": (seq_no_input, (7,)),
    "func_cnn": (func_cnn, (8, 8, 3)),
    "func_conv1d": (func_conv1d, (12, 2)),
}
#: more layer kinds (tests/rtlgen/test_keras3.py)
LAYERS = {
    "func_layers_2d": (func_layers_2d, (8, 8, 3)),
    "func_layers_1d": (func_layers_1d, (10, 3)),
    "func_preprocess": (func_preprocess, (6, 6, 3)),
    "func_decoder": (func_decoder, (3, 3, 2)),
    "func_activations": (func_activations, (6, 5, 2)),
    "func_nested": (func_nested, (6, 6, 2)),
    "func_se": (func_se, (5, 3, 4)),
    "func_broadcast_1d": (func_broadcast_1d, (7, 3)),
    "func_activations_v3": (func_activations_v3, (16,)),
    "func_mobilenet_v3": (func_mobilenet_v3, (16, 16, 3)),
    "func_tensor_ops": (func_tensor_ops, (6, 6, 3)),
}
#: recurrent models (random weights in [-0.8, 0.8], as the Keras 2 recurrent tests)
RECURRENT = {
    "rnn_simple_seq": (rnn_simple_seq, (8, 3)),
    "rnn_lstm": (rnn_lstm, (8, 3)),
    "rnn_lstm_seq": (rnn_lstm_seq, (6, 2)),
    "rnn_gru": (rnn_gru, (8, 3)),
    "rnn_gru_v1_stack": (rnn_gru_v1_stack, (7, 2)),
    "rnn_lstm_tagger": (rnn_lstm_tagger, (8, 3)),
}
#: models rtlgen refuses (no expected outputs)
REFUSED = {
    "seq_int8": seq_int8,
    "rnn_lstm_bidirectional": rnn_lstm_bidirectional,
    "rnn_gru_backwards": rnn_gru_backwards,
}
#: models also written as to_json() + save_weights("*.weights.h5")
JSON_MODELS = (
    "seq_mlp", "func_cnn", "func_layers_2d", "rnn_lstm", "rnn_gru_v1_stack", "func_nested"
)
#: models also written as Keras 3's legacy HDF5 (model.save("*.h5"); Keras 3.15 fails to
#: write func_layers_2d's augmentation layers there)
H5_MODELS = ("func_layers_1d", "rnn_lstm", "rnn_lstm_tagger", "func_nested")


def _seed(name: str) -> int:
    """The model's seed: the first models' as they were made (their position in MODELS),
    the later ones' from their name (adding a model changes no other model)."""
    if name in MODELS:
        return SEED + sorted(MODELS).index(name)
    return SEED + zlib.crc32(name.encode()) % 10_000


def build(name: str):
    import keras

    keras.utils.set_random_seed(_seed(name))
    make = {**MODELS, **LAYERS, **RECURRENT}[name][0] if name not in REFUSED else REFUSED[name]
    model = make()
    rng = np.random.default_rng(SEED)
    for layer in model.layers:  # recurrent weights (and biases) that all do something
        if isinstance(layer, keras.layers.SimpleRNN | keras.layers.LSTM | keras.layers.GRU):
            for w in layer.weights:
                w.assign(rng.uniform(-0.8, 0.8, w.shape).astype(np.float32))
    if name in LAYERS:  # biases and PReLU slopes that do something (Keras starts them at 0)
        for w in model.weights:
            if w.path.endswith(("/bias", "/alpha")):
                w.assign(rng.uniform(-0.5, 0.5, w.shape).astype(np.float32))
    for layer in model.layers:  # BatchNormalization statistics that do something
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.3, c).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.3, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
    return model


def main(outdir: Path, names: list[str]) -> None:
    """Write the models named (all if none) into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    for name, (_, shape) in {**MODELS, **LAYERS, **RECURRENT}.items():
        if names and name not in names:
            continue
        model = build(name)
        model.save(outdir / f"{name}.keras")
        if name in JSON_MODELS:
            (outdir / f"{name}.json").write_text(model.to_json())
            model.save_weights(outdir / f"{name}.weights.h5")
        if name in H5_MODELS:
            model.save(outdir / f"{name}.h5")
        x = fixed_inputs(shape, 32, 11)
        y = np.asarray(model.predict(x, verbose=0))
        np.savez_compressed(outdir / f"{name}_expected.npz", x=x, y=y)
        print(f"{name}: {model.count_params()} parameters")
    for name in REFUSED:
        if names and name not in names:
            continue
        build(name).save(outdir / f"{name}.keras")
        print(f"{name}: refused by rtlgen")


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "keras3",
        sys.argv[2:],
    )
