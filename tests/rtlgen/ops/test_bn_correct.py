"""A float BatchNormalization + a quantizer of more than 256 levels (`rtlgen.ops.bn_correct`):
the widened scale/shift plus corrected input ranges decides every input as the float model
(`rtlgen.quant.threshold.StepFunction`: TensorFlow's float32 BN op by op, checked bit for
bit against TensorFlow in tests/quant/test_threshold.py). Checked on every input mantissa
(TF-free), in Amaranth's simulator on the inputs at each corrected range's ends under
random backpressure, and through a saved graph.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.ops.bn_correct import MAX_CORRECTIONS, CorrectedScaleShift
from rtlgen.ops.scale_shift import KerasBatchNorm, scale_shift_reference
from rtlgen.passes import lower
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import run_int
from rtlgen.quant.threshold import FloatBatchNorm, StepFunction, step_output_type

from ..nets import run_top
from .network_checks import timing_matches_model
from .spatial_nets import tampered_is_refused


def bn_graph(q, in_type, channels=6, seed=0, clamp=ir.LINEAR, image=False):
    """Input -> Keras BatchNormalization (random float32 statistics, negative gamma included)
    with the quantizer ``q`` as its activation, lowered."""
    rng = np.random.default_rng(seed)
    gamma = rng.normal(0, 1.5, channels)
    beta = rng.normal(0.3, 1, channels)
    mean = rng.normal(0, 1, channels)
    var = rng.uniform(0.2, 3, channels)
    bn = FloatBatchNorm(gamma, beta, mean, var, 1e-3, centered=image)
    shape = (2, 3, channels) if image else (channels,)
    scale, shift = bn.as_scale_shift()
    node = KerasBatchNorm(
        "bn",
        shape,
        shape,
        scale=ir.FloatTensor(scale),
        shift=ir.FloatTensor(shift),
        bn=bn,
        out_quantizer=q,
        activation=clamp,
        source="bn",
    )
    graph = ir.ModelGraph("m", (ir.Input("x", shape, shape, out_type=in_type), node))
    return lower(graph), StepFunction(in_type, q, step_output_type(q), clamp, bn)


def every_input(graph, in_type, channels):
    xs = np.arange(in_type.min_int, in_type.max_int + 1)
    x = np.repeat(xs[:, None], channels, axis=1)
    shape = graph.nodes[0].out_shape
    if len(shape) == 3:  # the same value at every pixel
        return x, np.broadcast_to(x[:, None, None, :], (len(xs), *shape)).copy()
    return x, x


# (quantizer, input type, seed, image, clamp, corrected): > 256 levels each; "corrected":
# float32 rounding inside the BN decides some inputs differently from every fixed-point
# scale/shift (a CorrectedScaleShift; asserted, so the hard path stays tested), else the
# widened scale/shift alone is exact
CASES = {
    "bits12": (QuantizedBits(12, 4, alpha=1.0), FixedType(16, 8, True), 1, False, ir.LINEAR, True),
    "bits16": (QuantizedBits(16, 6, alpha=1.0), FixedType(16, 6, True), 4, False, ir.LINEAR, True),
    "bits14_relu": (
        QuantizedBits(14, 6, alpha=1.0),
        FixedType(14, 6, True),
        4,
        False,
        ir.RELU,
        True,
    ),
    "relu12": (QuantizedRelu(12, 5), FixedType(15, 7, True), 7, False, ir.LINEAR, None),
    "bits10_image": (
        QuantizedBits(10, 3, alpha=1.0),
        FixedType(14, 6, True),
        11,
        True,
        ir.LINEAR,
        None,
    ),
    "bits10": (QuantizedBits(10, 3, alpha=1.0), FixedType(14, 6, True), 0, False, ir.LINEAR, False),
}


def case_graph(case):
    q, in_type, seed, image, clamp, _ = CASES[case]
    return bn_graph(q, in_type, seed=seed, clamp=clamp, image=image)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_input_is_decided_as_the_float_model(case):
    q, in_type, seed, image, clamp, expected = CASES[case]
    graph, f = case_graph(case)
    node = graph.nodes[1]
    x, stream = every_input(graph, in_type, 6)
    got = run_int(graph, stream)
    got = got[:, 0, 0, :] if image else got
    np.testing.assert_array_equal(got, f(x))
    if expected is not None:
        assert isinstance(node, CorrectedScaleShift) is expected
    if isinstance(node, CorrectedScaleShift):
        # without its corrections the widened scale/shift is wrong exactly there
        plain = scale_shift_reference(node, x, in_type)
        assert np.any(plain != f(x))
        assert all(len(r) <= MAX_CORRECTIONS for r in node.corrections())
    else:
        assert type(node) is ir.ScaleShift


def test_channels_needing_more_corrections_than_built_are_named_the_others_exact(monkeypatch):
    """bits16 needs [5, 17, 5, 15, 4, 5] ranges per channel; with room for 8, channels 1 and 3
    keep the scale/shift's decisions (one warning naming the count), the rest are exact."""
    import rtlgen.ops.bn_correct as bn_correct
    from rtlgen.quant.errors import RtlgenWarning

    monkeypatch.setattr(bn_correct, "MAX_CORRECTIONS", 8)
    q, in_type, seed, image, clamp, _ = CASES["bits16"]
    with pytest.warns(RtlgenWarning, match="layer 'bn'.*in 2 of its 6 channels.*8 corrections"):
        graph, f = bn_graph(q, in_type, seed=seed, clamp=clamp, image=image)
    node = graph.nodes[1]
    assert isinstance(node, CorrectedScaleShift)
    x, _ = every_input(graph, in_type, 6)
    differs = np.any(run_int(graph, x) != f(x), axis=0)
    assert differs.tolist() == [False, True, False, True, False, False]


def _correction_inputs(node: CorrectedScaleShift, in_type: FixedType, n: int, seed: int):
    """Inputs at and just around every corrected range's ends, plus random ones."""
    rng = np.random.default_rng(seed)
    points = {in_type.min_int, in_type.max_int}
    for ranges in node.corrections():
        for lo, hi, _ in ranges:
            points.update(
                v for v in (lo - 1, lo, hi, hi + 1) if in_type.min_int <= v <= in_type.max_int
            )
    values = np.array(sorted(points))
    channels = node.in_shape[-1]
    return rng.choice(values, size=(n, channels))


@pytest.mark.parametrize("case", ["bits12", "bits14_relu"])
def test_hardware_is_the_reference_at_the_corrections_under_backpressure(case):
    in_type, seed = CASES[case][1], CASES[case][2]
    graph, f = case_graph(case)
    node = graph.nodes[1]
    assert isinstance(node, CorrectedScaleShift)
    x = _correction_inputs(node, in_type, 24, seed)
    run = run_top(graph, x, valid_prob=0.6, ready_prob=0.5, seed=seed)
    np.testing.assert_array_equal(run.outputs, run_int(graph, x))
    np.testing.assert_array_equal(run.outputs, f(x))


def test_hardware_on_an_image_stream():
    q = QuantizedBits(12, 4, alpha=1.0)
    graph, f = bn_graph(q, FixedType(16, 8, True), seed=1, image=True)
    node = graph.nodes[1]
    if not isinstance(node, CorrectedScaleShift):
        pytest.skip("this seed needs no correction on the fused (image) BN")
    x = _correction_inputs(node, FixedType(16, 8, True), 6 * 6, 2).reshape(6, 2, 3, 6)
    run = run_top(graph, x, valid_prob=0.7, ready_prob=0.6, seed=2)
    np.testing.assert_array_equal(run.outputs, run_int(graph, x))


def test_timing_matches_model():
    graph, _ = case_graph("bits12")
    timing_matches_model(graph)


def test_saved_graph_round_trip_and_tampering(tmp_path):
    graph, _ = case_graph("bits12")

    def narrow_accumulator(desc):
        desc["fields"]["acc_type"] = [8, 0, True]

    tampered_is_refused(graph, tmp_path, "CorrectedScaleShift", narrow_accumulator, "accumulator")


@pytest.mark.slow
def test_verilator_is_the_float_model_at_the_corrections(tmp_path, tmp_path_factory):
    """The generated Verilog in Verilator (backpressure 0.3): at the corrected inputs and
    their neighbours every output is the float model's; latency/II as the manifest says."""
    from rtlgen.emit import convert
    from rtlgen.sim_tb import simulate

    graph, f = case_graph("bits16")
    node = graph.nodes[1]
    in_type = CASES["bits16"][1]
    x = _correction_inputs(node, in_type, 40, 3)
    want = run_int(graph, x)
    np.testing.assert_array_equal(want, f(x))
    design = convert(graph, tmp_path / "design")
    build = tmp_path_factory.mktemp("vcache")
    result = simulate(design.outdir, x, want, backpressure=0.3, seed=1, build_root=build)
    assert result.passed and result.mismatches == 0, result.report
    result = simulate(design.outdir, x, want, backpressure=0.0, seed=1, build_root=build)
    assert result.passed, result.report
    assert result.latency_cycles == design.manifest.latency_cycles
