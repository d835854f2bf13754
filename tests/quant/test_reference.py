"""The integer reference model against an independent float64 oracle.

The oracle computes each layer the way QKeras defines it: float conv/dense with the
quantized weights q(W), q(b), then the activation quantizer's formula. With the small widths
used here every intermediate value is a dyadic rational well inside float64's 53-bit
mantissa, so the oracle is exact and the comparison must be equality.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from rtlgen import ir
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import predict, quantize_input, quantize_input_counted, run_int


def oracle_conv(x, w, b, stride, padding):
    top, bottom, left, right = padding
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    win = sliding_window_view(x, w.shape[:2], axis=(1, 2))[:, :: stride[0], :: stride[1]]
    y = np.einsum("nhwcij,ijco->nhwo", win, w)
    return y + (0 if b is None else b)


def oracle_pool(x, pool, stride, kind):
    win = sliding_window_view(x, pool, axis=(1, 2))[:, :: stride[0], :: stride[1]]
    return win.max(axis=(4, 5)) if kind == "max" else win.mean(axis=(4, 5))


@st.composite
def conv_nets(draw):
    h = draw(st.integers(3, 9))
    w = draw(st.integers(3, 9))
    c = draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    f = draw(st.integers(1, 4))
    same = draw(st.booleans())
    wbits = draw(st.integers(2, 8))
    abits = draw(st.integers(2, 8))
    aint = draw(st.integers(0, 3))
    sparsity = draw(st.sampled_from([0.0, 0.5, 0.9]))
    seed = draw(st.integers(0, 2**16))
    return h, w, c, k, s, f, same, wbits, abits, aint, sparsity, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_nets())
def test_conv_relu_pool_dense_matches_qkeras_formulas(params):
    h, wd, c, k, s, f, same, wbits, abits, aint, sparsity, seed = params
    rng = np.random.default_rng(seed)
    if same:
        ho, wo = -(-h // s), -(-wd // s)
        ph, pw = max((ho - 1) * s + k - h, 0), max((wo - 1) * s + k - wd, 0)
        padding = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    else:
        ho, wo = (h - k) // s + 1, (wd - k) // s + 1
        padding = (0, 0, 0, 0)
    kq, rq, dq = QuantizedBits(wbits, 0), QuantizedRelu(abits, aint), QuantizedBits(wbits, 1)
    w = rng.normal(size=(k, k, c, f)) * (rng.random((k, k, c, f)) >= sparsity)
    b = rng.normal(size=f) * 0.2
    pooled = (ho // 2, wo // 2) if ho >= 2 and wo >= 2 else None
    nodes = [
        ir.Input("in", (h, wd, c), (h, wd, c)),
        ir.Conv(
            "conv",
            (h, wd, c),
            (ho, wo, f),
            weights=ir.FloatTensor(w, kq),
            bias=ir.FloatTensor(b, kq),
            kernel=(k, k),
            stride=(s, s),
            padding=padding,
        ),
        ir.Activation("act", (ho, wo, f), (ho, wo, f), activation=ir.RELU, out_quantizer=rq),
    ]
    shape = (ho, wo, f)
    if pooled:
        nodes.append(
            ir.Pool("pool", shape, (*pooled, f), kind=ir.PoolKind.MAX, pool=(2, 2), stride=(2, 2))
        )
        shape = (*pooled, f)
    n_flat = int(np.prod(shape))
    wd_dense = rng.normal(size=(n_flat, 3))
    nodes += [
        ir.Flatten("flat", shape, (n_flat,)),
        ir.Dense("dense", (n_flat,), (3,), weights=ir.FloatTensor(wd_dense, dq)),
    ]
    graph = lower(ir.ModelGraph("t", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))

    x = np.round(rng.uniform(-8, 7.9375, size=(4, h, wd, c)) * 16) / 16  # exact in fixed<8,4>
    got = predict(graph, x)

    y = rq.reference(oracle_conv(x, kq.reference(w), kq.reference(b), (s, s), padding))
    if pooled:
        y = oracle_pool(y[:, : pooled[0] * 2, : pooled[1] * 2], (2, 2), (2, 2), "max")
    want = y.reshape(len(x), -1) @ dq.reference(wd_dense)
    np.testing.assert_array_equal(got, want)


def test_average_pool_rounds_half_to_even_into_its_type():
    graph = lower(
        ir.ModelGraph(
            "p",
            (
                ir.Input("in", (1, 3, 1), (1, 3, 1)),
                ir.Pool(
                    "avg", (1, 3, 1), (1, 1, 1), kind=ir.PoolKind.AVG, pool=(1, 3), stride=(1, 3)
                ),
            ),
        ),
        PrecisionConfig(input=FixedType(8, 0)),
    )
    out_t = graph.output.out_type
    x = np.array([[[[1], [1], [2]]]])  # mean 4/3
    y = run_int(graph, x)
    assert y.item() == round(4 / 3 * 2**out_t.frac)


def test_input_shape_mismatch_is_a_clear_error():
    graph = lower(ir.ModelGraph("m", (ir.Input("in", (4,), (4,)),)))
    with pytest.raises(RtlgenError, match=r"expects \(4,\)"):
        quantize_input(graph, np.zeros((2, 5)))


def test_input_saturates_to_input_type():
    graph = lower(
        ir.ModelGraph("m", (ir.Input("in", (2,), (2,)),)), PrecisionConfig(input=FixedType(8, 4))
    )
    assert quantize_input(graph, np.array([[100.0, -100.0]])).tolist() == [[127, -128]]


def _input_graph(input_type: FixedType, size: int):
    return lower(ir.ModelGraph("m", (ir.Input("in", (size,), (size,)),)), PrecisionConfig(input=input_type))


STEP = 2.0**-7  # fixed<8,1>: mantissas -128..127, values [-1, 127/128]


@pytest.mark.parametrize(
    "values, rounded, saturated",
    [
        ([0.0, 0.5, -1.0, 127 * STEP, -STEP, 3 * STEP], 0, 0),  # multiples of the step in range
        ([STEP / 2, 3 * STEP / 2, -STEP / 2, 0.3], 4, 0),  # halfway (to even) and in between
        ([1.0, 5.0, -1.5, -1e9, 127.5 * STEP], 0, 5),  # round past an end: saturated only
        ([-1 - STEP / 2, 127.4 * STEP], 2, 0),  # outside the range, but round to an end
        ([0.25, STEP / 3, 2.0, -3.0, 126.5 * STEP], 2, 2),  # a mix
        ([1e308, -1e308, np.finfo(np.float64).max], 0, 3),  # scale past float64: saturated
    ],
)
def test_quantize_input_counts_rounded_and_saturated_values(values, rounded, saturated):
    graph = _input_graph(FixedType(8, 7), len(values))
    quantized = quantize_input_counted(graph, np.array([values]))
    assert (quantized.values, quantized.rounded, quantized.saturated) == (len(values), rounded, saturated)
    assert np.array_equal(quantized.mantissas, quantize_input(graph, np.array([values])))
    assert str(quantized.input_type) == "fixed<8,1>"


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float32])
def test_quantize_input_counts_integer_and_narrow_inputs_exactly(dtype):
    graph = _input_graph(FixedType(8, 0), 4)  # integers -128..127
    quantized = quantize_input_counted(graph, np.array([[0, 1, 127, 200]], dtype=dtype))
    assert (quantized.rounded, quantized.saturated) == (0, 1)


def test_quantize_input_counts_a_single_unbatched_sample():
    graph = _input_graph(FixedType(8, 7), 2)
    quantized = quantize_input_counted(graph, np.array([STEP / 2, 3.0]))
    assert quantized.mantissas.shape == (1, 2) and (quantized.rounded, quantized.saturated) == (1, 1)


def test_quantize_input_description_names_type_range_and_counts():
    graph = _input_graph(FixedType(16, 10), 3)
    text = quantize_input_counted(graph, np.array([[0.1, 40.0, 1.0]])).describe()
    assert text == ("input type fixed<16,6> (range [-32, 31.999], step 2^-10): "
                    "1 of 3 values rounded, 1 saturated")


def test_float_model_default_precision_tracks_float_result():
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(16, 32)) * 0.3, rng.normal(size=32) * 0.1
    w2 = rng.normal(size=(32, 5)) * 0.3
    graph = lower(
        ir.ModelGraph(
            "mlp",
            (
                ir.Input("in", (16,), (16,)),
                ir.Dense(
                    "d1",
                    (16,),
                    (32,),
                    weights=ir.FloatTensor(w1),
                    bias=ir.FloatTensor(b1),
                    activation=ir.RELU,
                ),
                ir.Dense("d2", (32,), (5,), weights=ir.FloatTensor(w2)),
            ),
        )
    )
    x = rng.uniform(-2, 2, size=(500, 16))
    want = np.maximum(x @ w1 + b1, 0) @ w2
    got = predict(graph, x)
    assert np.mean(np.argmax(got, 1) == np.argmax(want, 1)) >= 0.99
    assert np.max(np.abs(got - want)) < 0.02
