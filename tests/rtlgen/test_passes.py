"""Graph passes (rtlgen/passes.py): folding a node into its producer only where the
producer's result is used by that node alone."""

from __future__ import annotations

import numpy as np

from rtlgen import ir
from rtlgen.ops.merge import Merge, MergeOp
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict


def test_a_scale_shift_is_not_folded_into_a_chain_whose_result_feeds_another_node():
    """Dense -> BN -> {x + 3, Multiply(BN, x + 3)} (keras.applications' MobileNetV3 hard
    swish: its ``x + 3.0`` after a folded BN): BN folds into the dense, but ``x + 3`` must
    not fold into that (the BN's result also feeds the Multiply). The fan-out was looked up
    under the dense's name (one consumer, the BN), so ``+ 3`` reached the Multiply's first
    input too: (x + 3)**2 instead of x * (x + 3)."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 3))
    scale, shift = np.array([0.5, 2.0, 1.0]), np.array([0.25, -1.0, 0.5])
    nodes = (
        ir.Input("x", (4,), (4,)),
        ir.Dense("d", (4,), (3,), weights=ir.FloatTensor(weights)),
        ir.ScaleShift("bn", (3,), (3,), scale=ir.FloatTensor(scale), shift=ir.FloatTensor(shift)),
        ir.ScaleShift(
            "add", (3,), (3,), scale=ir.FloatTensor(np.ones(3)), shift=ir.FloatTensor(np.full(3, 3.0))
        ),
        Merge("mul", (3,), (3,), inputs=("bn", "add"), kind=MergeOp.MULTIPLY, input_count=2),
    )
    graph = lower(ir.ModelGraph("m", nodes), PrecisionConfig(input=FixedType(8, 4)))
    assert [n.name for n in graph.nodes] == ["x", "d", "add", "mul"]  # bn folded into d
    x = np.round(rng.uniform(-4, 4, size=(32, 4)) * 16) / 16
    h = x @ weights * scale + shift
    np.testing.assert_allclose(predict(graph, x), h * (h + 3), atol=0.05)
