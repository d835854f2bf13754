"""--calibrate: float-model results sized from observed ranges, never wider than proven."""

import dataclasses

import numpy as np

from rtlgen import ir
from rtlgen.calibrate import calibrate
from rtlgen.passes import (
    DEFAULT_PRECISION,
    fold_batchnorm,
    fuse_activations,
    infer_precision,
    lower,
)
from rtlgen.quant.reference import predict


def float_mlp(seed=0):
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(size=(16, 24)) * 0.4, rng.normal(size=(24, 5)) * 0.4
    return ir.ModelGraph("mlp", (
        ir.Input("in", (16,), (16,)),
        ir.Dense("d1", (16,), (24,), weights=ir.FloatTensor(w1), bias=ir.FloatTensor(rng.normal(size=24) * 0.1)),
        ir.Activation("relu", (24,), (24,), activation=ir.RELU),
        ir.Dense("d2", (24,), (5,), weights=ir.FloatTensor(w2)),
    )), w1, w2


def test_calibrated_results_are_narrower_and_still_accurate():
    graph, w1, w2 = float_mlp()
    x = np.random.default_rng(1).uniform(-1, 1, size=(400, 16))
    proven = lower(graph)
    folded = fuse_activations(fold_batchnorm(graph))
    peaks = calibrate(folded, x)
    calibrated = infer_precision(folded, dataclasses.replace(DEFAULT_PRECISION, calibration=tuple(peaks.items())))
    for a, b in zip(proven.nodes[1:], calibrated.nodes[1:], strict=True):
        assert b.out_type.width <= a.out_type.width
        assert b.out_type.frac == a.out_type.frac
    assert sum(n.out_type.width for n in calibrated.nodes) < sum(n.out_type.width for n in proven.nodes)
    want = np.maximum(x @ w1 + folded.nodes[1].bias.values, 0) @ w2
    got = predict(calibrated, x)
    assert np.max(np.abs(got - want)) < 0.05
    # headroom: the calibrated range covers twice the observed peak
    d2 = calibrated.nodes[-1]
    assert d2.out_type.max_value >= 2 * peaks["d2"] - d2.out_type.step
