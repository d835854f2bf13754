"""rtlgen's QKeras quantizer semantics against qkeras 0.9.0 itself, and their parsing.

Oracle: the QKeras quantizer object applied to a float32 tensor. Our ``reference()`` must be
equal bit for bit on random values and on edge values (rounding ties, clipping, +-0, tiny
values), and ``quantize_constant()`` must hold exactly those values as integer mantissas.

Known mismatch classes (none is hit by the values used here):
- QKeras's forward value is ``x + stop_gradient(q(x) - x)`` in float32, which is not q(x)
  when ``q(x) - x`` needs more than float32's 24 bits: clipping |x| >~ 2**24 * step, or a
  below-epsilon x mapped to a far smaller 2**min_exp by a po2 quantizer. We follow the
  formula (`test_qkeras_ste_artifacts`), which is what the hardware computes.
- Power-of-two exponents (``auto_po2`` scales, quantized_po2) use TensorFlow's float32
  ``log`` and ``mean``, which may differ from numpy's in the last bit: an exponent can differ
  only when log2 of the value lies within ~1e-7 of k + 0.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.quantizers import (
    Binary,
    QuantizedBits,
    QuantizedPo2,
    QuantizedRelu,
    Ternary,
    exact_qtensor,
    parse_quantizer,
)

# ---------------------------------------------------------------------------------------
# configurations (class name, config dict as QKeras serializes it)
# ---------------------------------------------------------------------------------------
BITS_CONFIGS = [
    {"bits": b, "integer": i, "symmetric": s, "keep_negative": k, "alpha": a}
    for b, i in [
        (1, 0),
        (2, 0),
        (3, 1),
        (4, 0),
        (6, 0),
        (6, 2),
        (8, 3),
        (5, 4),
    ]  # QKeras fails on integer < 0 (int pow)
    for s in (0, 1)
    for k in (True, False)
    for a in (None, 1, 0.5)
    if not (b == 1 and not k)
] + [
    {"bits": b, "integer": i, "alpha": "auto_po2"}
    for b, i in [(2, 0), (3, 0), (4, 1), (6, 0), (8, 2)]
]
RELU_CONFIGS = [{"bits": b, "integer": i} for b in (1, 2, 4, 6, 8) for i in (0, 1, 3)]
PO2_CONFIGS = [
    {"bits": b, "max_value": m, "quadratic_approximation": qa}
    for b in (3, 4, 5)
    for m in (None, 1, 4)
    for qa in (False, True)
] + [{"bits": 4, "max_value": 1, "log2_rounding": "floor"}]
RELU_PO2_CONFIGS = [
    {"bits": b, "max_value": m, "quadratic_approximation": qa}
    for b in (3, 5, 6)
    for m in (None, 1, 2048)
    for qa in (False, True)
]
BINARY_CONFIGS = [
    {"use_01": u, "alpha": a} for u in (False, True) for a in (None, 1, 0.25, "auto_po2")
]
TERNARY_CONFIGS = [
    {"alpha": None},
    {"alpha": 1},
    {"alpha": 0.5, "threshold": 0.2},
    {"alpha": 1, "threshold": 0.5},
    {"alpha": "auto_po2"},
    {"alpha": "auto_po2", "number_of_unrolls": 2},
]
CONFIGS = (
    [("quantized_bits", c) for c in BITS_CONFIGS]
    + [("quantized_relu", c) for c in RELU_CONFIGS]
    + [("quantized_po2", c) for c in PO2_CONFIGS]
    + [("quantized_relu_po2", c) for c in RELU_PO2_CONFIGS]
    + [("binary", c) for c in BINARY_CONFIGS]
    + [("ternary", c) for c in TERNARY_CONFIGS]
)


def _id(item):
    name, config = item
    return f"{name}({','.join(f'{k}={v}' for k, v in config.items())})"


def _edge_values(config: dict) -> np.ndarray:
    """Ties and clipping points of the config's grid, +-0, tiny and exact values."""
    bits, integer = config.get("bits", 4), config.get("integer", 0)
    step = 2.0 ** (integer - bits + 1)
    k = np.arange(-(2**bits) - 2, 2**bits + 3)
    values = np.concatenate(
        [
            (k + 0.5) * step,  # every rounding tie
            k * step,  # every grid point, incl. clipping
            [
                0.0,
                -0.0,
                1e-30,
                -1e-30,
                0.33,
                -0.33,
                0.5,
                -0.5,
                2.0**-8,
                3 * 2.0**-9,
                5.0,
                -7.5,
                60.0,
                -64.0,
            ],
            2.0 ** np.arange(-12, 6) * 1.4142135,  # near po2 rounding boundaries (not on them)
        ]
    )
    return values.astype(np.float32)


def _random_tensors(seed: int):
    rng = np.random.default_rng(seed)
    shapes = [(3, 3, 4, 6), (20, 7), (9,), (5, 2, 6)]
    for index in range(12):
        shape = shapes[index % len(shapes)]
        scale = [0.02, 0.3, 1.0, 6.0][index % 4]
        x = (rng.normal(size=shape) * scale).astype(np.float32)
        x[rng.random(shape) < 0.25] = 0.0  # pruned weights
        yield x


@pytest.fixture(scope="module")
def qkeras():
    pytest.importorskip("qkeras")
    import qkeras.quantizers as qk

    return qk


def _qkeras_value(qk, name, config, x):
    import tensorflow as tf

    quantizer = getattr(qk, name)(**config)
    return np.asarray(quantizer(tf.constant(x)), dtype=np.float64)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("item", CONFIGS, ids=_id)
def test_reference_equals_qkeras(qkeras, item):
    name, config = item
    ours = parse_quantizer({"class_name": name, "config": config})
    tensors = list(_random_tensors(len(config)))
    if "auto_po2" not in str(config.get("alpha")):
        tensors.append(_edge_values(config))  # data-independent: edges one by one
    for x in tensors:
        want = _qkeras_value(qkeras, name, config, x)
        got = ours.reference(x)
        np.testing.assert_array_equal(got, want, err_msg=f"{name}{config} on shape {x.shape}")
        exact = _quantize_or_too_wide(ours, x)
        if exact is not None:
            np.testing.assert_array_equal(exact.values, want)  # mantissas * 2**-frac == q(x)


def _quantize_or_too_wide(q, x):
    """quantize_constant, or None where po2 values (0 -> 2**min_exp) need > 62 bits."""
    try:
        return q.quantize_constant(x)
    except UnsupportedError as exc:
        assert q.name in ("quantized_po2", "quantized_relu_po2") and "62" in str(exc)
        return None


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "spec",
    ["quantized_bits(4,0)", "quantized_bits(6,1,keep_negative=False)", "binary()", "ternary()"],
)
def test_kernel_quantizer_without_alpha_is_what_the_qkeras_layer_applies(qkeras, spec):
    """QConv2D/QDense turn alpha=None into auto_po2 (+ symmetric): `for_kernel` does the same."""
    import tensorflow as tf
    from qkeras import QConv2D, QDense

    rng = np.random.default_rng(1)
    for layer in (QConv2D(6, 3, kernel_quantizer=spec), QDense(7, kernel_quantizer=spec)):
        layer.build((None, 5, 5, 4) if isinstance(layer, QConv2D) else (None, 12))
        kernel = rng.normal(size=tuple(layer.kernel.shape)).astype(np.float32) * 0.4
        kernel[..., 0] = 0.0  # an all-zero (pruned) output channel
        layer.kernel.assign(kernel)
        want = np.asarray(layer.kernel_quantizer_internal(tf.constant(kernel)))
        ours = parse_quantizer(spec).for_kernel()
        np.testing.assert_array_equal(ours.quantize_constant(kernel).values, want)


@pytest.mark.timeout(300)
def test_qkeras_ste_artifacts(qkeras):
    """QKeras returns x + (q(x) - x) in float32: wrong once q(x) - x is not exact. We keep
    the formula, which is what the hardware computes."""
    x = np.array([3.0e7, -3.0e7], dtype=np.float32)
    want = np.array([31 / 32, -1.0])
    assert not np.array_equal(
        _qkeras_value(qkeras, "quantized_bits", {"bits": 6, "integer": 0, "alpha": 1}, x), want
    )
    np.testing.assert_array_equal(QuantizedBits(6, 0, alpha=1).reference(x), want)
    # The same cancellation at the other end: 1e-9 (< K.epsilon()) maps to 2**-64, and
    # 1e-9 + (2**-64 - 1e-9) is 0 in float32.
    config = {"bits": 6, "max_value": 1}
    tiny = np.array([1e-9], dtype=np.float32)
    assert _qkeras_value(qkeras, "quantized_relu_po2", config, tiny)[0] == 0.0
    assert (
        parse_quantizer({"class_name": "quantized_relu_po2", "config": config}).reference(tiny)[0]
        == 2.0**-64
    )


# ---------------------------------------------------------------------------------------
# exact mantissas and types (no TensorFlow)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("item", CONFIGS, ids=_id)
def test_quantize_constant_is_exact(item):
    name, config = item
    q = parse_quantizer({"class_name": name, "config": config})
    for x in _random_tensors(7):
        t = _quantize_or_too_wide(q, x)
        if t is None:
            continue
        assert t.mantissa.dtype == np.int64 and t.shape == x.shape
        np.testing.assert_array_equal(t.type.to_float(t.mantissa), q.reference(x))


def test_quantized_bits_types_match_ap_fixed():
    assert str(QuantizedBits(6, 0, alpha=1).quantize_constant(np.zeros(2)).type) == "fixed<6,1>"
    assert str(QuantizedBits(8, 3).output_type()) == "fixed<8,4>"
    assert str(QuantizedBits(5, 2, keep_negative=False).output_type()) == "ufixed<5,2>"
    assert str(QuantizedRelu(6, 2).output_type()) == "ufixed<6,2>"
    # alpha = 2**-1 halves every value: one more fractional bit
    assert QuantizedBits(4, 0, alpha=0.5).quantize_constant(np.array([0.5])).values.tolist() == [
        0.25
    ]


def test_one_bit_quantized_bits_ignores_integer_like_qkeras():
    q = QuantizedBits(1, 2)
    np.testing.assert_array_equal(
        q.reference(np.array([-3.0, -0.0, 0.0, 0.1])), [-1.0, 1.0, 1.0, 1.0]
    )


def test_auto_po2_ignores_all_zero_channels_for_the_type():
    w = np.zeros((3, 3, 2, 4), dtype=np.float32)
    w[..., 0] = np.linspace(-1, 1, 18).reshape(3, 3, 2)
    w[..., 2] = np.linspace(-0.01, 0.01, 18).reshape(3, 3, 2)
    t = QuantizedBits(4, 0, alpha="auto_po2").quantize_constant(w)
    assert np.all(t.mantissa[..., 1] == 0) and np.all(t.mantissa[..., 3] == 0)
    assert t.type.width <= 4 + 8  # two used channels 2**7 apart in scale, not 2**-23


def test_exact_qtensor():
    assert exact_qtensor(np.zeros(3)).mantissa.tolist() == [0, 0, 0]
    t = exact_qtensor(np.array([0.75, -2.0, 0.0, 0.125]))
    assert t.type.frac == 3 and t.type.signed and t.mantissa.tolist() == [6, -16, 0, 1]
    with pytest.raises(UnsupportedError, match="62"):
        exact_qtensor(np.array([2.0**40, 2.0**-40]))


def test_po2_zero_is_the_smallest_power_like_qkeras():
    q = QuantizedPo2(4, 1)  # exponents -8..7 with max_value 1: no exponent sign bit
    assert q.reference(np.array([0.0, -0.0]))[0] == 2.0**-8


def test_po2_with_wide_exponent_range_and_zeros_is_rejected_clearly():
    with pytest.raises(UnsupportedError, match="quantized_po2"):
        QuantizedPo2(8).quantize_constant(np.array([0.0, 3.0, 0.5]))  # 0 -> 2**-64


@pytest.mark.parametrize(
    "q",
    [
        QuantizedBits(4, 0, alpha="auto_po2"),
        QuantizedBits(4, 0, alpha=0.5),
        QuantizedBits(1, 0),
        QuantizedPo2(4),
        Binary(),
        Ternary(),
    ],
    ids=str,
)
def test_quantizers_that_cannot_be_activations_say_so(q):
    with pytest.raises(UnsupportedError, match="activation"):
        q.output_type()


# ---------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("quantized_relu(2)", QuantizedRelu(2, 0)),
        ("quantized_relu(3,1)", QuantizedRelu(3, 1)),
        ("quantized_relu", QuantizedRelu(8, 0)),
        ("quantized_bits(6,0,alpha=1)", QuantizedBits(6, 0, alpha=1.0)),
        (
            "quantized_bits(bits=4, integer=0, symmetric=1, alpha='auto_po2')",
            QuantizedBits(4, 0, True, alpha="auto_po2"),
        ),
        (
            "quantized_bits(4,0,1,keep_negative=False,alpha=1)",
            QuantizedBits(4, 0, True, False, 1.0),
        ),
        ("  quantized_bits( 8 , 3 , keep_negative = True )", QuantizedBits(8, 3)),
        ('quantized_bits(4, 0, alpha="auto_po2")', QuantizedBits(4, 0, True, alpha="auto_po2")),
        ("quantized_po2(4, 1)", QuantizedPo2(4, 1)),
        ("binary(alpha=1)", Binary(False, 1.0)),
        ("ternary(alpha='auto_po2')", Ternary("auto_po2")),
        (
            "quantized_relu(4, 0, use_sigmoid=0, negative_slope=0.0, relu_upper_bound=None)",
            QuantizedRelu(4, 0),
        ),
    ],
)
def test_parse_strings(text, expected):
    assert parse_quantizer(text) == expected


def test_parse_dict_with_keras_metadata_keys():
    spec = {
        "module": "qkeras.quantizers",
        "class_name": "quantized_bits",
        "registered_name": "quantized_bits",
        "config": {
            "bits": 6,
            "integer": 0,
            "symmetric": 0,
            "alpha": 1,
            "keep_negative": True,
            "use_stochastic_rounding": False,
            "qnoise_factor": 1.0,
        },
    }
    assert parse_quantizer(spec) == QuantizedBits(6, 0, alpha=1.0)
    assert parse_quantizer(None) is None


def test_kernel_conversion_of_alpha_none():
    assert parse_quantizer("quantized_bits(4,0)").for_kernel() == QuantizedBits(
        4, 0, True, alpha="auto_po2"
    )
    assert parse_quantizer("quantized_bits(4,0,alpha=1)").for_kernel() == QuantizedBits(
        4, 0, alpha=1.0
    )
    assert parse_quantizer("binary()").for_kernel() == Binary(False, "auto_po2")


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("quantized_bits(4,", RtlgenError, "malformed quantizer string"),
        ("quantized_bits(4, alpha=auto_po2)", RtlgenError, "arguments must be literals"),
        ("__import__('os').system('true')", RtlgenError, "malformed quantizer string"),
        ("quantized_bits(*args)", RtlgenError, "arguments must be literals"),
        ("quantized_bits(**{'bits': 4})", RtlgenError, r"'\*\*' is not allowed"),
        ("quantized_bits(4, bits=4)", RtlgenError, "given twice"),
        (
            "quantized_bits(4, 0, 0, 1, 1, 0, None, 1.0, None, 1, 0, 7)",
            RtlgenError,
            "too many positional",
        ),
        ("quantized_bits(4, foo=1)", UnsupportedError, "unknown option 'foo'"),
        ("quantized_bits('four')", RtlgenError, "bits='four' must be an integer"),
        ("quantized_ulaw(4)", UnsupportedError, "quantized_ulaw"),
        ("my_quantizer(4)", UnsupportedError, "unknown quantizer 'my_quantizer'"),
        ("quantized_bits(4, alpha='auto')", UnsupportedError, "not a fixed-point value"),
        ("quantized_bits(4, alpha=0.3)", UnsupportedError, "not a power of two"),
        ("quantized_bits(4, qnoise_factor=0.5)", UnsupportedError, "qnoise_factor"),
        ("quantized_bits(4, use_stochastic_rounding=True)", UnsupportedError, "stochastic"),
        ("quantized_relu(4, negative_slope=0.3)", RtlgenError, "power of two"),
        ("quantized_relu(4, use_sigmoid=1, qnoise_factor=0.5)", UnsupportedError, "qnoise"),
        ("quantized_tanh(4, foo=1)", UnsupportedError, "unknown option 'foo'"),
        ("binary(alpha='auto')", UnsupportedError, "not a fixed-point value"),
        ("ternary(alpha='auto_po2', threshold=0.3)", UnsupportedError, "threshold"),
        ("quantized_po2(4, log2_rounding='ceil')", UnsupportedError, "log2_rounding"),
    ],
)
def test_malformed_or_unsupported_strings(text, error, message):
    with pytest.raises(error, match=message):
        parse_quantizer(text, "layer 'd1' kernel_quantizer")


def test_errors_name_the_layer():
    with pytest.raises(RtlgenError, match="layer 'd1' kernel_quantizer"):
        parse_quantizer("quantized_bits(4,", "layer 'd1' kernel_quantizer")


@pytest.mark.parametrize(
    "spec", [{"class_name": 3}, {"class_name": "quantized_bits", "config": [4]}, 42]
)
def test_malformed_specs(spec):
    with pytest.raises(RtlgenError):
        parse_quantizer(spec)
