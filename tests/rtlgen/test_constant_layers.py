"""`rtlgen.passes.fold_constant_layers`: layers that compute a constant are built as
constants, their dead producers not at all; the outputs stay exactly the same."""

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.hardware import HardwareOptions, Parallelism
from rtlgen.passes import (
    PrecisionConfig,
    fold_batchnorm,
    fold_constant_layers,
    fuse_activations,
    fuse_thresholds,
    infer_precision,
    lower,
)
from rtlgen.quant.errors import RtlgenWarning
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import run_int, run_int_outputs

from .nets import conv_net, mlp, random_inputs, run_top, run_top_outputs

CONFIG = PrecisionConfig(input=FixedType(10, 6))


def _dense(name, n_in, n_out, rng, zero=False, last=False, inputs=()):
    """A QKeras-style dense layer; ``zero``: weights far below the quantizer's step (all
    quantize to zero), as in a network whose hidden layers were trained to nothing."""
    scale = 1e-4 if zero else 0.5
    return ir.Dense(
        name, (n_in,), (n_out,),
        weights=ir.FloatTensor(rng.normal(size=(n_in, n_out)) * scale, QuantizedBits(6, 0)),
        bias=ir.FloatTensor(rng.normal(size=n_out) * 0.4, QuantizedBits(6, 0)),
        activation=ir.LINEAR if last else ir.RELU,
        out_quantizer=None if last else QuantizedRelu(6, 0),
        inputs=inputs,
    )


def _chain(sizes, zero, seed=0):
    rng = np.random.default_rng(seed)
    nodes = [ir.Input("in", (sizes[0],), (sizes[0],))]
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        nodes.append(_dense(f"d{k}", n_in, n_out, rng, k in zero, k == len(sizes) - 2))
    return ir.ModelGraph("net", tuple(nodes))


def _unfolded(graph):
    """`lower` without the constant folding."""
    return infer_precision(fuse_activations(fold_batchnorm(fuse_thresholds(graph))), CONFIG)


def _same_outputs(a, b, n=300):
    x = random_inputs(a, n, seed=1)
    want, got = run_int_outputs(a, x), run_int_outputs(b, x)
    assert list(want) == list(got)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    return want


def test_zero_hidden_layers_leave_one_constant_layer_on_the_input():
    graph = _chain((6, 20, 20, 20, 4), zero={1, 2})
    with pytest.warns(RtlgenWarning, match=r"weights of layer\(s\) d1, d2 are all zero, so layer\(s\) d3 compute a constant.*d0, d1, d2 reach no output"):
        folded = lower(graph, CONFIG)
    assert [n.name for n in folded.nodes] == ["in", "d3"]
    last = folded.node("d3")
    assert last.inputs == ("in",) and last.in_shape == (6,)
    assert not last.weights.mantissa.any()
    want = _same_outputs(_unfolded(graph), folded)
    out = next(iter(want.values()))
    assert (out == out[0]).all()  # a constant network


def test_dense_layers_after_a_zero_layer_fold_also_behind_other_ops():
    rng = np.random.default_rng(2)
    nodes = [
        ir.Input("in", (5,), (5,)),
        _dense("d0", 5, 9, rng),
        _dense("d1", 9, 7, rng, zero=True),
        _dense("d2", 7, 6, rng),
        ir.Flatten("flat", (6,), (6,)),
        _dense("d3", 6, 3, rng, last=True),
    ]
    graph = ir.ModelGraph("net", tuple(nodes))
    with pytest.warns(RtlgenWarning, match=r"d3 compute a constant.*d0, d1, d2, flat reach"):
        folded = lower(graph, CONFIG)
    assert [n.name for n in folded.nodes] == ["in", "d3"]  # through the flatten
    assert folded.node("d3").inputs == ("in",)
    _same_outputs(_unfolded(graph), folded)
    # an op after a constant that is itself an output is kept, reading the constant
    graph = ir.ModelGraph("net", tuple(nodes[:5]), outputs=("flat",))
    with pytest.warns(RtlgenWarning, match=r"d2 compute a constant.*d0, d1 reach"):
        folded = lower(graph, CONFIG)
    assert [n.name for n in folded.nodes] == ["in", "d2", "flat"]
    assert folded.node("d2").inputs == ("in",) and folded.node("flat").inputs == ("d2",)
    _same_outputs(_unfolded(graph), folded)


def test_a_producer_another_output_still_needs_is_kept():
    rng = np.random.default_rng(3)
    nodes = [
        ir.Input("in", (6,), (6,)),
        _dense("d0", 6, 8, rng),
        _dense("dead_end", 8, 4, rng, zero=True, last=True, inputs=("d0",)),
        _dense("live", 8, 3, rng, last=True, inputs=("d0",)),
    ]
    graph = ir.ModelGraph("net", tuple(nodes), outputs=("dead_end", "live"))
    with pytest.warns(RtlgenWarning, match="dead_end compute a constant") as record:
        folded = lower(graph, CONFIG)
    assert "reach no output" not in str(record[0].message)
    assert [n.name for n in folded.nodes] == ["in", "d0", "dead_end", "live"]
    assert folded.node("dead_end").inputs == ("in",) and folded.outputs == ("dead_end", "live")
    _same_outputs(_unfolded(graph), folded)


@pytest.mark.parametrize("parallelism", [Parallelism.FULL, Parallelism.AUTO])
def test_hardware_of_a_folded_network_is_bit_exact_under_backpressure(parallelism):
    graph = _chain((7, 12, 10, 5), zero={1})
    with pytest.warns(RtlgenWarning):
        folded = lower(graph, CONFIG)
    x = random_inputs(folded, 4, seed=5)
    run = run_top(folded, x, HardwareOptions(parallelism=parallelism), 0.6, 0.5, seed=5)
    np.testing.assert_array_equal(run.outputs, run_int(_unfolded(graph), x))


def test_hardware_keeps_the_live_branch_of_a_two_output_network():
    rng = np.random.default_rng(4)
    nodes = [
        ir.Input("in", (6,), (6,)),
        _dense("d0", 6, 8, rng),
        _dense("zero", 8, 5, rng, zero=True, inputs=("d0",)),
        _dense("after", 5, 4, rng, last=True, inputs=("zero",)),
        _dense("live", 8, 3, rng, last=True, inputs=("d0",)),
    ]
    graph = ir.ModelGraph("net", tuple(nodes), outputs=("after", "live"))
    with pytest.warns(RtlgenWarning):
        folded = lower(graph, CONFIG)
    assert [n.name for n in folded.nodes] == ["in", "d0", "after", "live"]
    x = random_inputs(folded, 3, seed=6)
    runs = run_top_outputs(folded, x, HardwareOptions(), 0.7, 0.6, seed=6)
    want = run_int_outputs(_unfolded(graph), x)
    for name in ("after", "live"):
        np.testing.assert_array_equal(runs[name].outputs, want[name])


def test_a_graph_without_constant_layers_is_returned_as_it_is():
    graph = mlp()
    assert fold_constant_layers(graph) is graph


def test_an_image_input_keeps_its_layers():
    # folding behind an image input would lose the beats that time each sample
    graph = conv_net(h=6, w=6)
    dense = graph.nodes[-1]
    zero = dense.replace(weights=ir.QTensor(np.zeros_like(dense.weights.mantissa), dense.weights.type))
    graph = graph.with_nodes([*graph.nodes[:-1], zero])
    assert fold_constant_layers(graph) is graph


def test_the_report_and_graph_npz_name_the_constant_and_removed_layers(tmp_path):
    from rtlgen.emit import convert
    from rtlgen.serialize import load_graph

    with pytest.warns(RtlgenWarning):
        folded = lower(_chain((6, 20, 20, 20, 4), zero={1, 2}), CONFIG)
    assert (folded.constant_layers, folded.removed_layers) == (("d3",), ("d0", "d1", "d2"))
    convert(folded, tmp_path / "out")
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert "built as constants (all-zero weights, or a constant input folded into the bias): d3" in report
    assert "not built (their results reach no output): d0, d1, d2" in report
    loaded = load_graph(tmp_path / "out" / "graph.npz")
    assert (loaded.constant_layers, loaded.removed_layers) == (("d3",), ("d0", "d1", "d2"))
