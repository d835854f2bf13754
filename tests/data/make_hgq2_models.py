"""Write the HGQ2 test models and HGQ2's own outputs on fixed-point inputs (tests/data/hgq2/).

Run in the oracle venv (Python 3.12, ``pip install -e '.[hgq2]'`` or
``pip install keras==3.15.1 hgq2==0.2.0 jax jaxlib``)::

    KERAS_BACKEND=jax python tests/data/make_hgq2_models.py [OUTDIR [NAME ...]]

(NAMEs: only those models, without the bare quantizer cases.)

Nothing here is trained: each quantizer's widths (``k``, ``i``/``b``, ``f``) are set to
seeded random integers after the model is built, as training would leave them (per-weight
kernel widths with some widths 0, i.e. pruned weights; per-channel or per-tensor activation
widths), so every rounding and overflow mode and every granularity is exercised on purpose.

Each model ``NAME`` gives ``NAME.keras`` and ``NAME_expected.npz`` with ``x`` (inputs: exact
in ``fixed<16,6>``) and ``y`` (``model.predict(x)``, float32). ``quantizers_expected.npz``
holds bare quantizer cases (``x``, ``k``, ``i``, ``f``/``b`` and HGQ2's output) per kind.
The test tests/rtlgen/test_hgq2.py reads these files and, when HGQ2 is importable, builds the
models again with this module and compares live.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

SEED = 1234
#: a saved model's inputs: multiples of 1/16 in [-6, 6), exact in fixed<16,6>
INPUT_STEP = 1 / 16


def _keras():
    import keras

    return keras


def fixed_inputs(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(-96, 96, size=(n, *shape)) * INPUT_STEP).astype(np.float32)


def _set_kbi(q, rng, b_range=(0, 7), i_range=(-1, 2), k=1) -> None:
    """Random integer widths for a KBI quantizer (kernels, biases)."""
    inner = q.quantizer
    shape = tuple(inner._b.shape)
    inner._b.assign(rng.integers(*b_range, size=shape, endpoint=True).astype(np.float32))
    inner._i.assign(rng.integers(*i_range, size=shape, endpoint=True).astype(np.float32))
    inner._k.assign(np.full(shape, k, dtype=np.uint8))


def _set_kif(q, rng, i_range=(0, 3), f_range=(1, 5), k=1) -> None:
    """Random integer widths for a KIF quantizer (activations)."""
    inner = q.quantizer
    shape = tuple(inner._f.shape)
    inner._i.assign(rng.integers(*i_range, size=shape, endpoint=True).astype(np.float32))
    inner._f.assign(rng.integers(*f_range, size=shape, endpoint=True).astype(np.float32))
    if isinstance(k, np.ndarray):
        inner._k.assign(k.astype(np.uint8))
    else:
        inner._k.assign(np.full(shape, k, dtype=np.uint8))


def _randomize(model, seed: int) -> None:
    """Random weights and widths for every HGQ2 layer of ``model``."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ in ("QUnaryFunctionLUT", "QAffinedUnaryFunctionLUT"):
            _randomize_table(layer, rng)
            continue
        if getattr(layer, "kernel", None) is not None:
            kernel = layer._kernel if hasattr(layer, "_kernel") else layer.kernel
            kernel.assign(rng.normal(0, 0.6, size=tuple(kernel.shape)).astype(np.float32))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.5, size=tuple(layer.bias.shape)).astype(np.float32))
        if hasattr(layer, "_kq"):
            _set_kbi(layer.kq, rng) if layer.kq.q_type == "kbi" else _set_kif(
                layer.kq, rng, (-1, 1), (0, 5)
            )
        if getattr(layer, "_bq", None) is not None:
            _set_kbi(layer.bq, rng, (3, 8), (0, 2))
        if getattr(layer, "enable_iq", False) and hasattr(layer, "_iq"):
            for q in layer.iq if hasattr(layer.iq, "quantizers") else (layer.iq,):
                _set_kif(q, rng)
        if hasattr(layer, "fused_kernel_equation"):  # QEinsumDenseBatchnorm
            c = tuple(layer.moving_variance.shape)
            layer.bn_gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
        elif type(layer).__name__ == "QBatchNormDense":  # BN on the input, fused
            c = tuple(layer.moving_variance.shape)
            layer.bn_gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
        elif hasattr(layer, "moving_variance") and hasattr(layer, "bn_gamma"):
            c = tuple(layer.moving_variance.shape)
            layer.bn_gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.bn_beta.assign(rng.normal(0, 0.3, c).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
            _set_kbi(layer.kq, rng, (2, 7), (0, 1))
            _set_kbi(layer.bq, rng, (3, 8), (0, 2))
        if type(layer).__name__ == "Quantizer":
            _set_kif(layer, rng)
        if getattr(layer, "enable_oq", False):
            _set_kif(layer.oq, rng, (1, 3), (1, 4), k=0)  # unsigned, as its k0=False


def _randomize_table(layer, rng) -> None:
    """A table activation: per-element input widths, one output width (KBI, per tensor)."""
    if layer.enable_iq:
        _set_kif(layer.iq, rng, (1, 3), (2, 5))
    _set_kbi(layer.oq, rng, (6, 10), (0, 2))
    if hasattr(layer, "scale"):  # QAffinedUnaryFunctionLUT: f(x * scale + bias)
        layer.scale.assign(rng.uniform(0.4, 1.6, (1,)).astype(np.float32))
        layer.bias.assign(rng.uniform(-0.8, 0.8, (1,)).astype(np.float32))


def _conf(kind: str, place: str, **kw):
    from hgq.quantizer import QuantizerConfig

    return QuantizerConfig(kind, place, **kw)


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------
def mlp_perweight():
    """Per-weight kernels (default KBI, RND, SAT_SYM), per-element input quantizers of a
    flat vector (default KIF, RND, WRAP), ReLU between."""
    keras = _keras()
    from hgq.layers import QDense

    inp = keras.Input((8,), name="x")
    h = QDense(6, activation="relu", name="fc1")(inp)
    out = QDense(4, name="fc2")(h)
    return keras.Model(inp, out, name="mlp_perweight")


def mlp_uniform():
    """The same network with one width per tensor (the benchmark's baseline)."""
    keras = _keras()
    from hgq.layers import QDense

    tensor = dict(heterogeneous_axis=())
    inp = keras.Input((8,), name="x")
    h = QDense(
        6,
        activation="relu",
        name="fc1",
        kq_conf=_conf("kbi", "weight", **tensor),
        iq_conf=_conf("kif", "datalane", **tensor),
    )(inp)
    out = QDense(
        4,
        name="fc2",
        kq_conf=_conf("kbi", "weight", **tensor),
        iq_conf=_conf("kif", "datalane", **tensor),
    )(h)
    return keras.Model(inp, out, name="mlp_uniform")


def mlp_modes():
    """Rounding and overflow modes of the activation quantizers: TRN/SAT per tensor,
    RND_CONV/SAT_SYM per element, an unsigned (k=0) RND/SAT, a KIF kernel, an output
    quantizer (enable_oq)."""
    keras = _keras()
    from hgq.layers import QDense

    inp = keras.Input((7,), name="x")
    h = QDense(
        5,
        name="trn_sat",
        iq_conf=_conf(
            "kif", "datalane", round_mode="TRN", overflow_mode="SAT", heterogeneous_axis=()
        ),
    )(inp)
    h = QDense(
        6,
        activation="relu",
        name="conv_sym",
        kq_conf=_conf("kif", "weight"),
        iq_conf=_conf("kif", "datalane", round_mode="RND_CONV", overflow_mode="SAT_SYM"),
        enable_oq=True,
        oq_conf=_conf("kif", "datalane", round_mode="RND", overflow_mode="SAT", k0=False),
    )(h)
    out = QDense(3, name="head", use_bias=False)(h)
    return keras.Model(inp, out, name="mlp_modes")


def cnn2d():
    """QConv2D with per-channel input widths (homogeneous over batch, rows, columns), a
    plain Keras MaxPooling2D and Flatten, then a QDense with per-element input widths."""
    keras = _keras()
    from hgq.layers import QConv2D, QDense

    inp = keras.Input((6, 6, 2), name="x")
    h = QConv2D(
        3,
        (3, 3),
        activation="relu",
        name="conv",
        iq_conf=_conf("kif", "datalane", homogeneous_axis=(0, 1, 2)),
    )(inp)
    h = keras.layers.MaxPooling2D((2, 2), name="pool")(h)
    h = keras.layers.Flatten(name="flat")(h)
    out = QDense(4, name="fc")(h)
    return keras.Model(inp, out, name="cnn2d")


def cnn1d():
    """QConv1D ('same' padding, stride 1) with one input width per tensor, SAT overflow."""
    keras = _keras()
    from hgq.layers import QConv1D, QDense

    inp = keras.Input((9, 3), name="x")
    h = QConv1D(
        4,
        3,
        padding="same",
        activation="relu",
        name="conv",
        iq_conf=_conf("kif", "datalane", overflow_mode="SAT", heterogeneous_axis=()),
    )(inp)
    h = keras.layers.GlobalAveragePooling1D(name="gap")(h)
    out = QDense(2, name="fc")(h)
    return keras.Model(inp, out, name="cnn1d")


def einsum_bn():
    """QEinsumDense as a dense ('...a,ab->...b'), QBatchNormalization (per-channel scale and
    offset widths, per-element input widths), QDense."""
    keras = _keras()
    from hgq.layers import QBatchNormalization, QDense, QEinsumDense

    inp = keras.Input((8,), name="x")
    h = QEinsumDense("...a,ab->...b", 6, bias_axes="b", activation="relu", name="ein")(inp)
    h = QBatchNormalization(name="bn")(h)
    return keras.Model(inp, QDense(3, name="head")(h), name="einsum_bn")


def seq_pool():
    """On a sequence: QEinsumDense 'abc,cd->abd' (per position, per-channel input widths),
    QMaxPooling1D and QGlobalAveragePooling1D with their own input quantizers, QDense."""
    keras = _keras()
    from hgq.layers import QDense, QEinsumDense, QGlobalAveragePooling1D, QMaxPooling1D

    inp = keras.Input((8, 3), name="x")
    h = QEinsumDense(
        "abc,cd->abd",
        (8, 4),
        bias_axes="d",
        activation="relu",
        name="ein",
        iq_conf=_conf("kif", "datalane", homogeneous_axis=(0, 1)),
    )(inp)
    h = QMaxPooling1D(2, name="pool", iq_conf=_conf("kif", "datalane", heterogeneous_axis=()))(h)
    h = QGlobalAveragePooling1D(
        name="gap", iq_conf=_conf("kif", "datalane", homogeneous_axis=(0, 1))
    )(h)
    return keras.Model(inp, QDense(2, name="head")(h), name="seq_pool")


def residual():
    """A fork into two QDense joined by QAdd (a quantizer per input) and QMultiply, head."""
    keras = _keras()
    from hgq.layers import QAdd, QDense, QMultiply

    inp = keras.Input((6,), name="x")
    a = QDense(5, activation="relu", name="a")(inp)
    b = QDense(5, name="b")(inp)
    h = QAdd(name="add")([a, b])
    h = QMultiply(name="mul")([h, b])
    return keras.Model(inp, QDense(3, name="head")(h), name="residual")


def bare_quantizer():
    """A bare HGQ2 Quantizer layer (per-channel widths, TRN/SAT) before a QDense without an
    input quantizer (enable_iq=False)."""
    keras = _keras()
    from hgq.layers import QDense, Quantizer

    inp = keras.Input((5,), name="x")
    h = Quantizer(
        _conf("kif", "datalane", round_mode="TRN", overflow_mode="SAT", homogeneous_axis=(0,)),
        name="q_in",
    )(inp)
    return keras.Model(inp, QDense(3, name="fc", enable_iq=False)(h), name="bare_quantizer")


def einsum_bn_fused():
    """QEinsumDenseBatchnorm (a dense with batch normalization folded into the quantized
    kernel and bias), QDense."""
    keras = _keras()
    from hgq.layers import QDense, QEinsumDenseBatchnorm

    inp = keras.Input((8,), name="x")
    h = QEinsumDenseBatchnorm("...a,ab->...b", 6, bias_axes="b", activation="relu", name="ebn")(inp)
    return keras.Model(inp, QDense(3, name="head")(h), name="einsum_bn_fused")


def conv_per_pixel():
    """QConv2D with the default (per-element) input widths: a width per pixel position,
    which a pixel stream cannot apply; rtlgen refuses it."""
    keras = _keras()
    from hgq.layers import QConv2D

    inp = keras.Input((4, 4, 2), name="x")
    out = QConv2D(2, (3, 3), name="conv")(inp)
    return keras.Model(inp, keras.layers.Flatten(name="flat")(out), name="conv_per_pixel")


def bench_perweight():
    """The benchmark's model (benchmarks/bench_hgq2.py): a 16-24-12-5 MLP with per-weight
    kernel widths and per-element input widths."""
    keras = _keras()
    from hgq.layers import QDense

    inp = keras.Input((16,), name="x")
    h = QDense(24, activation="relu", name="fc1")(inp)
    h = QDense(12, activation="relu", name="fc2")(h)
    return keras.Model(inp, QDense(5, name="head")(h), name="bench_perweight")


def bench_uniform():
    """The benchmark's model with one width per tensor: the same float weights, each
    kernel's width the largest of its per-weight widths, each input quantizer's the largest
    of its per-element ones (what a uniform quantization would need for the same values)."""
    keras = _keras()
    from hgq.layers import QDense

    tensor = dict(heterogeneous_axis=())
    inp = keras.Input((16,), name="x")
    h = inp
    for units, name, act in ((24, "fc1", "relu"), (12, "fc2", "relu"), (5, "head", None)):
        h = QDense(
            units,
            activation=act,
            name=name,
            kq_conf=_conf("kbi", "weight", **tensor),
            iq_conf=_conf("kif", "datalane", **tensor),
        )(h)
    model = keras.Model(inp, h, name="bench_uniform")
    source = build("bench_perweight")
    for layer, src in zip(model.layers[1:], source.layers[1:], strict=True):
        layer._kernel.assign(src._kernel)
        layer.bias.assign(src.bias)
        for q, q_src in ((layer.kq, src.kq), (layer.iq, src.iq)):
            inner, inner_src = q.quantizer, q_src.quantizer
            for var, var_src in zip(inner.variables, inner_src.variables, strict=True):
                value = np.asarray(var_src.numpy())
                var.assign(np.full(tuple(var.shape), value.max(), dtype=value.dtype))
        for var, var_src in zip(
            layer.bq.quantizer.variables, src.bq.quantizer.variables, strict=True
        ):
            var.assign(var_src.numpy())
    return model


def lut_act():
    """Table activations (QUnaryFunctionLUT) in an MLP: sigmoid with per-element input widths
    and HGQ2's default table output quantizer (KBI, RND, SAT_SYM, one width), tanh with a
    RND_CONV/SAT output, then a QDense."""
    keras = _keras()
    from hgq.layers import QDense, QUnaryFunctionLUT

    inp = keras.Input((8,), name="x")
    h = QDense(6, name="fc1")(inp)
    h = QUnaryFunctionLUT("sigmoid", name="sig")(h)
    h = QDense(5, name="fc2")(h)
    table = _conf("kbi", "table", round_mode="RND_CONV", overflow_mode="SAT")
    h = QUnaryFunctionLUT("tanh", name="th", oq_conf=table)(h)
    return keras.Model(inp, QDense(3, name="head")(h), name="lut_act")


def lut_channels():
    """A table activation with a width per element of its output quantizer (a flat vector:
    one table per channel; HGQ2's allow_heterogeneous_table)."""
    keras = _keras()
    from hgq.layers import QDense, QUnaryFunctionLUT

    inp = keras.Input((6,), name="x")
    h = QDense(5, name="fc")(inp)
    table = _conf("kbi", "table", homogeneous_axis=(0,), heterogeneous_axis=None)
    h = QUnaryFunctionLUT("tanh", name="th", oq_conf=table)(h)
    return keras.Model(inp, QDense(3, name="head")(h), name="lut_channels")


def lut_conv():
    """A table activation on an image: per-channel input and output widths (a table per
    channel for every pixel), after a QConv2D."""
    keras = _keras()
    from hgq.layers import QConv2D, QDense, QUnaryFunctionLUT

    channels = dict(homogeneous_axis=(0, 1, 2), heterogeneous_axis=None)
    inp = keras.Input((5, 5, 2), name="x")
    h = QConv2D(3, (3, 3), name="conv", iq_conf=_conf("kif", "datalane", **channels))(inp)
    h = QUnaryFunctionLUT(
        "silu",
        name="act",
        iq_conf=_conf("kif", "datalane", **channels),
        oq_conf=_conf("kbi", "table", round_mode="RND_CONV", overflow_mode="SAT", **channels),
    )(h)
    h = keras.layers.Flatten(name="flat")(h)
    return keras.Model(inp, QDense(3, name="head")(h), name="lut_conv")


#: the named functions of `lut_funcs`, each with its output quantizer's (b, i, modes)
LUT_FUNCTIONS = (
    ("sigmoid", 8, 1, "RND", "SAT_SYM"),
    ("tanh", 9, 1, "RND_CONV", "SAT"),
    ("softsign", 7, 1, "TRN", "SAT"),
    ("softplus", 10, 4, "RND", "SAT_SYM"),
    ("exponential", 11, 6, "RND", "SAT"),
    ("elu", 8, 3, "RND_CONV", "WRAP"),
    ("selu", 9, 4, "RND", "SAT_SYM"),
    ("silu", 10, 3, "TRN", "SAT_SYM"),
    ("gelu", 10, 3, "RND", "SAT"),
    ("hard_sigmoid", 6, 1, "RND", "SAT_SYM"),
    ("hard_silu", 9, 3, "RND_CONV", "SAT"),
    ("relu6", 7, 3, "RND", "SAT"),
    ("mish", 10, 3, "RND_ZERO", "SAT_SYM"),
    ("log_sigmoid", 9, 4, "RND_INF", "SAT_SYM"),
)
#: `lut_funcs` input: one width for the tensor, fixed<8,4> (every code in [-8, 8))
LUT_INPUT_I, LUT_INPUT_F = 3, 4


def _every_code_table(layer, inp, b: int, i: int):
    """``layer`` (a table activation) applied to ``inp``, its input quantizer set to one
    width with 256 codes (fixed<8,4>: `lut_codes` are all of them) and its output quantizer
    to ``b`` bits, ``i`` integer bits."""
    out = layer(inp)
    inner = layer.iq.quantizer
    inner._i.assign(np.full(tuple(inner._i.shape), LUT_INPUT_I, np.float32))
    inner._f.assign(np.full(tuple(inner._f.shape), LUT_INPUT_F, np.float32))
    inner._k.assign(np.ones(tuple(inner._k.shape), np.uint8))
    quantizer = layer.oq.quantizer
    quantizer._b.assign(np.full(tuple(quantizer._b.shape), b, np.float32))
    quantizer._i.assign(np.full(tuple(quantizer._i.shape), i, np.float32))
    quantizer._k.assign(np.ones(tuple(quantizer._k.shape), np.uint8))
    return out


def lut_funcs():
    """Every supported named function as a QUnaryFunctionLUT on the same input, whose
    quantizer (one width) has 256 codes: the saved inputs are all of them, so each table is
    compared with HGQ2 on its every entry; the branches are concatenated."""
    keras = _keras()
    from hgq.layers import QUnaryFunctionLUT

    inp = keras.Input((16,), name="x")
    outs = []
    for name, b, i, rnd, ovf in LUT_FUNCTIONS:
        layer = QUnaryFunctionLUT(
            name,
            name=f"t_{name}",
            iq_conf=_conf("kif", "datalane", overflow_mode="SAT", heterogeneous_axis=()),
            oq_conf=_conf("kbi", "table", round_mode=rnd, overflow_mode=ovf),
        )
        outs.append(_every_code_table(layer, inp, b, i))
    out = keras.layers.Concatenate(name="cat")(outs)
    return keras.Model(inp, out, name="lut_funcs")


def lut_codes() -> np.ndarray:
    """`lut_funcs`'s inputs: the 256 codes of fixed<8,4>, 16 samples of 16."""
    step = 2.0**-LUT_INPUT_F
    codes = np.arange(-(2 ** (LUT_INPUT_I + LUT_INPUT_F)), 2 ** (LUT_INPUT_I + LUT_INPUT_F))
    return (codes * step).astype(np.float32).reshape(16, 16)


def lut_affine_act():
    """Table activations with an affine input (QAffinedUnaryFunctionLUT: ``oq(f(iq(x) *
    scale + bias))``, one float32 scale and bias each) in an MLP: tanh, then sigmoid with
    per-element output widths."""
    keras = _keras()
    from hgq.layers import QAffinedUnaryFunctionLUT, QDense

    inp = keras.Input((8,), name="x")
    h = QDense(6, name="fc1")(inp)
    h = QAffinedUnaryFunctionLUT("tanh", name="th")(h)
    h = QDense(5, name="fc2")(h)
    table = _conf("kbi", "table", homogeneous_axis=(0,), heterogeneous_axis=None)
    h = QAffinedUnaryFunctionLUT("sigmoid", name="sig", oq_conf=table)(h)
    return keras.Model(inp, QDense(3, name="head")(h), name="lut_affine_act")


#: `lut_affine`: (function, scale, bias) of each QAffinedUnaryFunctionLUT (float32 values
#: off any short binary grid, so ``x * scale + bias`` rounds)
LUT_AFFINE = (
    ("tanh", 0.7391234, -0.3127771),
    ("sigmoid", 1.3317, 0.52913),
    ("silu", 0.61803, 0.1),
    ("softsign", 1.1, -0.77),
    ("exponential", 0.4142, -1.234567),
    ("gelu", 0.93, 0.0123),
)


def lut_affine():
    """QAffinedUnaryFunctionLUT of several functions on every code of fixed<8,4> (as
    `lut_funcs`): each table compared with HGQ2 on its every entry."""
    keras = _keras()
    from hgq.layers import QAffinedUnaryFunctionLUT

    inp = keras.Input((16,), name="x")
    outs = []
    for name, scale, bias in LUT_AFFINE:
        layer = QAffinedUnaryFunctionLUT(
            name,
            name=f"a_{name}",
            iq_conf=_conf("kif", "datalane", overflow_mode="SAT", heterogeneous_axis=()),
            oq_conf=_conf("kbi", "table", round_mode="RND", overflow_mode="SAT"),
        )
        outs.append(_every_code_table(layer, inp, 10, 3))
        layer.scale.assign(np.array([scale], np.float32))
        layer.bias.assign(np.array([bias], np.float32))
    out = keras.layers.Concatenate(name="cat")(outs)
    return keras.Model(inp, out, name="lut_affine")


def softmax_head():
    """An MLP ending in QSoftmax (HGQ2's table softmax: exp table, sum, 1/x table, product)
    with a saturating exp-table input quantizer; the default table widths."""
    keras = _keras()
    from hgq.layers import QDense, QSoftmax

    inp = keras.Input((8,), name="x")
    h = QDense(6, activation="relu", name="fc1")(inp)
    h = QDense(5, name="logits")(h)
    out = QSoftmax(name="softmax", exp_iq_conf=_conf("kif", "datalane", overflow_mode="SAT"))(h)
    return keras.Model(inp, out, name="softmax_head")


def softmax_iq():
    """QSoftmax with its own input quantizer (per class widths) and stable=False (exp of
    the quantized logits, no exp-table input quantizer)."""
    keras = _keras()
    from hgq.layers import QDense, QSoftmax

    inp = keras.Input((8,), name="x")
    h = QDense(6, name="logits")(inp)
    out = QSoftmax(name="softmax", enable_iq=True, stable=False)(h)
    return keras.Model(inp, out, name="softmax_iq")


def softmax_mid():
    """A QSoftmax that another layer follows (rtlgen refuses it: the hardware does not
    compute the probabilities)."""
    keras = _keras()
    from hgq.layers import QDense, QSoftmax

    inp = keras.Input((6,), name="x")
    h = QSoftmax(name="softmax")(QDense(4, name="fc")(inp))
    return keras.Model(inp, QDense(2, name="head")(h), name="softmax_mid")


def bn_dense():
    """QBatchNormDense (batch normalization of the input fused into the dense's quantized
    kernel and bias), then a QDense."""
    keras = _keras()
    from hgq.layers import QBatchNormDense, QDense

    inp = keras.Input((8,), name="x")
    h = QBatchNormDense(6, activation="relu", name="bnd")(inp)
    return keras.Model(inp, QDense(3, name="head")(h), name="bn_dense")


MODELS = {
    "mlp_perweight": (mlp_perweight, (8,)),
    "mlp_uniform": (mlp_uniform, (8,)),
    "mlp_modes": (mlp_modes, (7,)),
    "cnn2d": (cnn2d, (6, 6, 2)),
    "cnn1d": (cnn1d, (9, 3)),
    "conv_per_pixel": (conv_per_pixel, (4, 4, 2)),
    "bench_perweight": (bench_perweight, (16,)),
    "bench_uniform": (bench_uniform, (16,)),
    "einsum_bn": (einsum_bn, (8,)),
    "seq_pool": (seq_pool, (8, 3)),
    "residual": (residual, (6,)),
    "bare_quantizer": (bare_quantizer, (5,)),
    "einsum_bn_fused": (einsum_bn_fused, (8,)),
    "lut_act": (lut_act, (8,)),
    "lut_funcs": (lut_funcs, (16,)),
    "softmax_head": (softmax_head, (8,)),
    "bn_dense": (bn_dense, (8,)),
    "softmax_mid": (softmax_mid, (6,)),
    "softmax_iq": (softmax_iq, (8,)),
    "lut_channels": (lut_channels, (6,)),
    "lut_conv": (lut_conv, (5, 5, 2)),
    "lut_affine_act": (lut_affine_act, (8,)),
    "lut_affine": (lut_affine, (16,)),
}
#: models whose weights and widths another model's build (or their own) sets
_DERIVED = ("bench_uniform", "lut_funcs", "lut_affine")
#: models saved with inputs of their own instead of `fixed_inputs`
_INPUTS = {"lut_funcs": lut_codes, "lut_affine": lut_codes}


def build(name: str):
    """The model ``name`` with its seeded random weights and widths."""
    make, _ = MODELS[name]
    model = make()
    if name not in _DERIVED:
        _randomize(model, SEED + list(MODELS).index(name))
    return model


def expected(model, shape: tuple[int, ...], n: int = 64, seed: int = 7, name: str = ""):
    x = _INPUTS[name]() if name in _INPUTS else fixed_inputs(shape, n, seed)
    return x, np.asarray(model.predict(x, verbose=0))


def extra_outputs(name: str, model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Further arrays of ``NAME_expected.npz``: a softmax model's logits (the layer before
    its QSoftmax, after the QSoftmax's input quantizer if enabled), which rtlgen predicts."""
    if name not in ("softmax_head", "softmax_iq"):
        return {}
    keras = _keras()
    logits = np.asarray(
        keras.Model(model.inputs, model.get_layer("logits").output).predict(x, verbose=0)
    )
    softmax = model.get_layer("softmax")
    if softmax.enable_iq:
        logits = np.asarray(softmax.iq(logits, training=False))
    return {"logits": logits}


# ---------------------------------------------------------------------------------------
# bare quantizers
# ---------------------------------------------------------------------------------------
QUANTIZER_CASES = [
    (q_type, place, rnd, ovf)
    for q_type in ("kif", "kbi")
    for place in ("weight", "datalane")
    for rnd in ("RND", "RND_CONV", "TRN")
    for ovf in ("WRAP", "SAT", "SAT_SYM")
]


def quantizer_outputs(seed: int = 99):
    """{case: (x, k, i, f_or_b, y)} for per-element widths on a (1, 64) input."""
    from hgq.quantizer import Quantizer

    rng = np.random.default_rng(seed)
    out = {}
    for q_type, place, rnd, ovf in QUANTIZER_CASES:
        axes = dict(homogeneous_axis=()) if place == "weight" else dict(homogeneous_axis=(0,))
        q = Quantizer(_conf(q_type, place, round_mode=rnd, overflow_mode=ovf, **axes))
        shape = (4, 64)
        q.build(shape)
        inner = q.quantizer
        wshape = tuple(inner._k.shape)
        k = rng.integers(0, 1, size=wshape, endpoint=True).astype(np.uint8)
        i = rng.integers(-2, 3, size=wshape, endpoint=True).astype(np.float32)
        if q_type == "kif":
            w = rng.integers(-2, 5, size=wshape, endpoint=True).astype(np.float32)
            inner._f.assign(w)
        else:
            w = rng.integers(0, 6, size=wshape, endpoint=True).astype(np.float32)
            inner._b.assign(w)
        inner._i.assign(i)
        inner._k.assign(k)
        x = (rng.normal(0, 4, size=shape)).astype(np.float32)
        x[0, :8] = [0.5, -0.5, 1.5, -1.5, 0.25, -0.25, 0.75, -0.75]  # ties
        y = np.asarray(q(x, training=False))
        out["-".join((q_type, place, rnd, ovf))] = (x, k, i, w, y)
    return out


def main(outdir: Path, names: list[str]) -> None:
    """Write the models ``names`` (all, and the bare quantizer cases, when empty)."""
    import keras

    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    keras.utils.set_random_seed(SEED)
    outdir.mkdir(parents=True, exist_ok=True)
    for name in names or MODELS:
        model = build(name)
        model.save(outdir / f"{name}.keras")
        x, y = expected(model, MODELS[name][1], name=name)
        extra = extra_outputs(name, model, x)
        np.savez_compressed(outdir / f"{name}_expected.npz", x=x, y=y, **extra)
        print(f"{name}: {model.count_params()} parameters -> {name}.keras")
    if names:
        return
    cases = quantizer_outputs()
    arrays = {}
    for case, (x, k, i, w, y) in cases.items():
        for key, value in zip(("x", "k", "i", "w", "y"), (x, k, i, w, y), strict=True):
            arrays[f"{case}/{key}"] = value
    np.savez_compressed(outdir / "quantizers_expected.npz", **arrays)
    print(f"{len(cases)} quantizer cases -> quantizers_expected.npz")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "hgq2", sys.argv[2:])
