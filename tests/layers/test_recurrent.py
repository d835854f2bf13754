"""RecurrentCell in Amaranth's simulator against `rtlgen.quant.recurrent.run_sequence`: random
sequences, random valid/ready, the step timing of its contract."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.layers.recurrent import RecurrentCell
from rtlgen.ops.recurrent import GRU, LSTM, SimpleRNN, cell_program, lower_recurrent
from rtlgen.passes import LayerPrecision, LowerContext, PrecisionConfig
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits
from rtlgen.quant.recurrent import VecKind, run_sequence

from .streams import simulate_stream

IN_TYPE = FixedType(5, 2, True)


def lowered_cell(
    cls,
    steps: int,
    features: int,
    units: int,
    seed: int,
    *,
    qkeras: bool = True,
    return_sequences: bool = False,
    reset_after: bool = True,
    state: bool = True,
    activation: str = '"quantized_tanh(4)"',
    recurrent_activation: str = '"quantized_sigmoid(4)"',
    wide: bool = False,
):
    """A lowered recurrent node with random weights (QKeras quantizers when ``qkeras``);
    ``wide``: 8-bit weights and state and quantized_tanh(8), whose gate inputs carry too
    many fractional bits for exact tables (threshold banks)."""
    rng = np.random.default_rng(seed)
    gates = {SimpleRNN: 1, LSTM: 4, GRU: 3}[cls]
    gu = gates * units
    q = (QuantizedBits(8, 0, alpha=1) if wide else QuantizedBits(4, 1, alpha=1)) if qkeras else None
    if wide:
        activation = '"quantized_tanh(8)"'
    state_q = '"quantized_bits(8,0,alpha=1)"' if wide else '"quantized_bits(4,1,alpha=1)"'
    bias_shape = (2, gu) if cls is GRU else (gu,)
    out_shape = (steps, units) if return_sequences else (units,)
    node = cls(
        "rnn",
        (steps, features),
        out_shape,
        weights=ir.FloatTensor(rng.uniform(-1.5, 1.5, (features, gu)), q),
        recurrent=ir.FloatTensor(rng.uniform(-1.5, 1.5, (units, gu)), q),
        bias=ir.FloatTensor(rng.uniform(-1, 1, bias_shape), q),
        activation=activation if qkeras else '"tanh"',
        recurrent_activation=recurrent_activation if qkeras else '"sigmoid"',
        state_quantizer=state_q if qkeras and state else "null",
        return_sequences=return_sequences,
        reset_after=reset_after,
        qkeras=qkeras,
    )
    config = PrecisionConfig(input=IN_TYPE, weight_width=6, result_frac=5)
    return lower_recurrent(node, LowerContext(IN_TYPE, LayerPrecision(), config, qkeras))


def _sequences(rng, n: int, steps: int, features: int) -> np.ndarray:
    return rng.integers(IN_TYPE.min_int, IN_TYPE.max_int + 1, (n, steps, features))


def _run(node, x, seed, valid_prob, ready_prob):
    program = cell_program(node, IN_TYPE)
    cell = RecurrentCell(program, node.steps, node.return_sequences)
    beats = [[int(v) for v in step] for sample in x for step in sample]
    per_sample = node.steps if node.return_sequences else 1
    run = simulate_stream(cell, beats, len(x) * per_sample, seed, valid_prob, ready_prob)
    want = run_sequence(program, x, node.return_sequences).reshape(len(x) * per_sample, -1)
    return cell, run, want


#: (cell, (steps T, features F, units U), options)
CASES = [
    (SimpleRNN, (1, 1, 1), dict()),
    (SimpleRNN, (4, 3, 5), dict(return_sequences=True)),
    (LSTM, (3, 2, 2), dict()),
    (LSTM, (2, 1, 3), dict(return_sequences=True, qkeras=False)),
    (GRU, (3, 3, 2), dict()),
    (GRU, (2, 2, 3), dict(reset_after=False, return_sequences=True)),
    (GRU, (4, 1, 1), dict(qkeras=False)),
    (SimpleRNN, (3, 2, 4), dict(activation='"quantized_relu(3,1)"', state=False)),
    # 8-bit: gates by threshold banks (255 thresholds: the two-level search), QKeras's hard
    # sigmoid as an exact offset and clamp
    (LSTM, (3, 2, 2), dict(wide=True)),
    (GRU, (2, 2, 2), dict(wide=True, recurrent_activation='"hard_sigmoid"')),
]


@pytest.mark.parametrize("cls, shape, options", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_cell_matches_reference_under_backpressure(cls, shape, options):
    steps, features, units = shape
    node = lowered_cell(cls, steps, features, units, 3, **options)
    kinds = {op.kind for op in cell_program(node, IN_TYPE).ops}
    assert (VecKind.THRESHOLD in kinds) == options.get("wide", False)
    x = _sequences(np.random.default_rng(units), 3, steps, features)
    _, run, want = _run(node, x, 5, 0.6, 0.5)
    np.testing.assert_array_equal(np.array(run.outputs), want)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_step_timing_is_the_contract(cls, return_sequences):
    """At full rate a beat is taken every `step_cycles` cycles and a step's output leaves
    `step_cycles` after its beat; `model_timing` predicts both."""
    node = lowered_cell(cls, 3, 2, 2, 11, return_sequences=return_sequences)
    x = _sequences(np.random.default_rng(1), 2, 3, 2)
    cell, run, want = _run(node, x, 0, 1.0, 1.0)
    np.testing.assert_array_equal(np.array(run.outputs), want)
    period = cell.step_cycles
    assert np.diff(run.in_cycles).tolist() == [period] * (len(run.in_cycles) - 1)
    emitted = [c for k, c in enumerate(run.in_cycles) if cell.emits(k % node.steps)]
    assert run.out_cycles == [c + period for c in emitted]
    accepted, out = cell.model_timing(list(range(len(run.in_cycles))), 2)
    assert [a - accepted[0] for a in accepted] == [c - run.in_cycles[0] for c in run.in_cycles]
    assert [o - accepted[0] for o in out] == [c - run.in_cycles[0] for c in run.out_cycles]


def test_state_returns_to_zero_between_sequences():
    """The same sequence twice in a row gives the same outputs twice."""
    node = lowered_cell(LSTM, 4, 2, 3, 2, return_sequences=True)
    x = _sequences(np.random.default_rng(4), 1, 4, 2)
    _, run, _ = _run(node, np.concatenate([x, x]), 2, 0.7, 0.7)
    outputs = np.array(run.outputs)
    np.testing.assert_array_equal(outputs[:4], outputs[4:])
