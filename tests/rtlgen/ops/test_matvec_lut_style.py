"""The latency-budget search in the lut style (``--multiplier lut``, issue 18): a shared
general multiplier built of LUTs costs far more than a DSP's LUTs beside it, so the search
charges it `plan.LUTS_PER_SHARED_LUT_MULTIPLIER` (and counts the threshold banks'
comparators, `plan.LUTS_PER_COMPARATOR`) and builds constant MAC arrays where the
time-multiplexed layer would cost more; the other styles plan as before."""

from __future__ import annotations

import dataclasses

import pytest

from rtlgen.emit import predict_timing
from rtlgen.hardware import HardwareOptions, NetworkTop
from rtlgen.layers.common import Multiplier
from rtlgen.plan import (
    LUTS_PER_COMPARATOR,
    LUTS_PER_CONSTANT_PRODUCT,
    LUTS_PER_SHARED_LUT_MULTIPLIER,
    LUTS_PER_SHARED_MULTIPLIER,
    _lut_cost,
)

from .network_checks import bit_exact_in_simulator, timing_matches_model
from .test_matvec import bn_net

#: a network and budget where the default style keeps the last dense time-multiplexed
BUDGET = 49


def _graph():
    return bn_net((4, 5, 7), units=(8, 32, 16), seed=3)


def _reuse(top: NetworkTop) -> dict[str, int]:
    return {p.node.name: p.reuse for p in top.plans if p.node.op == "dense"}


def test_lut_style_charges_a_shared_multiplier_its_lut_cost():
    """In the lut style a shared multiplier costs `LUTS_PER_SHARED_LUT_MULTIPLIER` and the
    threshold banks' comparators count; in the others as before."""
    top = NetworkTop(_graph(), HardwareOptions(multiplier=Multiplier.LUT, latency_budget=None))
    serial = sum(p.multipliers for p in top.plans if p.reuse > 1)
    parallel = sum(p.multipliers for p in top.plans if p.reuse == 1)
    comparators = sum(p.stages[0].comparators for p in top.plans if p.node.op == "threshold")
    assert serial and comparators
    assert _lut_cost(top.plan) == (
        serial * LUTS_PER_SHARED_LUT_MULTIPLIER
        + parallel * LUTS_PER_CONSTANT_PRODUCT
        + comparators * LUTS_PER_COMPARATOR
    )
    auto = dataclasses.replace(top.plan, options=HardwareOptions(latency_budget=None))
    assert _lut_cost(auto) == (
        serial * LUTS_PER_SHARED_MULTIPLIER + parallel * LUTS_PER_CONSTANT_PRODUCT
    )


@pytest.mark.slow  # ~1.2 s of CPU: the budget search runs twice
def test_lut_style_budget_builds_a_constant_array_where_sharing_costs_more():
    """Same graph and budget: the default style keeps the last dense time-multiplexed, the
    lut style builds it as a constant array (cheaper by the search's estimate in that
    style, and faster); both meet the budget."""
    graph = _graph()
    auto = NetworkTop(graph, HardwareOptions(latency_budget=BUDGET))
    lut = NetworkTop(graph, HardwareOptions(multiplier=Multiplier.LUT, latency_budget=BUDGET))
    assert _reuse(auto)["dense2"] > 1
    assert _reuse(lut)["dense2"] == 1
    assert predict_timing(lut)[0] <= predict_timing(auto)[0] <= BUDGET
    # the default style's choices, built in the lut style, cost more by the lut estimate
    auto_in_lut = NetworkTop(
        graph, dataclasses.replace(auto.plan.options, multiplier=Multiplier.LUT)
    )
    assert _reuse(auto_in_lut) == _reuse(auto)
    assert _lut_cost(lut.plan) < _lut_cost(auto_in_lut.plan)


@pytest.mark.slow
def test_lut_style_budget_plan_is_bit_exact_and_timed():
    graph = _graph()
    lut = NetworkTop(graph, HardwareOptions(multiplier=Multiplier.LUT, latency_budget=BUDGET))
    bit_exact_in_simulator(graph, n=2, seed=2, options=lut.plan.options)
    timing_matches_model(graph, lut.plan.options)


@pytest.mark.slow
def test_lut_style_constant_array_takes_a_serial_dense_s_result_beats_bit_exact():
    """As the QP6 design plans: the middle dense sends its result in 4 beats through a
    bank picking thresholds by the beat, the last dense gathers them (`Deserialize`) into a
    constant array; bit-exact under backpressure, timed as modelled, within the budget."""
    graph = bn_net((4, 5, 7), units=(16, 64, 16), seed=1)
    options = HardwareOptions(multiplier=Multiplier.LUT, latency_budget=58)
    top = NetworkTop(graph, options)
    assert dict(top.plan.options.layer_out_beats) == {"dense1": 4}
    stages = {p.node.name: [type(s).__name__ for s in p.stages] for p in top.plans}
    assert stages["dense1"] == ["SerialMatVec"]
    assert stages["bn1"] == ["BeatThresholdBank"]
    assert stages["dense2"] == ["Deserialize", "ConstantMatVec"]
    assert predict_timing(top)[0] <= 58
    bit_exact_in_simulator(graph, n=2, seed=1, options=top.plan.options)
    timing_matches_model(graph, top.plan.options)
