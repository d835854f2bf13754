"""`rtlgen.quant.recurrent`: the cell program's ops against plain integer formulas, and the
types and ranges its builder proves hold every value on random and extreme inputs."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.quant.fixed import FixedType, Overflow, Rounding, requantize
from rtlgen.quant.recurrent import ProgramBuilder, VecKind, run_sequence, step

X = FixedType(5, 2, True)
H = FixedType(6, 3, True)


def _program(seed: int):
    """Every op kind once: h' = requant(t(x K + h R + b) * (1 - g) + g), g from a slice."""
    rng = np.random.default_rng(seed)
    b = ProgramBuilder({"x": (X, 3), "h": (H, 2)})
    wt = FixedType(4, 2, True)
    acc = b.mac(
        ("x", "h"),
        [rng.integers(-8, 8, (3, 4)), rng.integers(-8, 8, (2, 4))],
        [wt, wt],
        rng.integers(-8, 8, 4),
        wt,
    )
    pre, gate_pre = b.slice(acc, 0, 2), b.slice(acc, 2, 2)
    table_type = FixedType(6, 2, True)
    table = np.arange(table_type.min_int, table_type.max_int + 1) // 4
    t = b.table(pre, table, table_type, FixedType(5, 2, True), Rounding.CONVERGENT)
    g = b.requant(gate_pre, FixedType(3, 2, False), 0, None, Rounding.CONVERGENT, Overflow.SATURATE)
    one_minus = b.rsub(4, g)
    mixed = b.add(b.mul(t, one_minus), g)
    h_next = b.requant(mixed, H, None, None, Rounding.CONVERGENT, Overflow.SATURATE)
    return b.program({"h": h_next}, mixed), table_type


def _extremes(t: FixedType, rng, n: int, size: int) -> np.ndarray:
    v = rng.integers(t.min_int, t.max_int + 1, (n, size))
    v[0], v[1] = t.min_int, t.max_int
    return v


@pytest.mark.parametrize("seed", range(4))
def test_every_value_stays_in_its_proven_range(seed):
    program, _ = _program(seed)
    rng = np.random.default_rng(seed)
    env = step(program, {"x": _extremes(X, rng, 400, 3), "h": _extremes(H, rng, 400, 2)})
    for op in program.ops:
        v = env[op.out]
        assert v.min() >= op.lo and v.max() <= op.hi, op.kind
        assert op.type.min_int <= op.lo and op.hi <= op.type.max_int, op.kind


def test_ops_compute_their_formulas():
    program, table_type = _program(0)
    rng = np.random.default_rng(1)
    x, h = _extremes(X, rng, 50, 3), _extremes(H, rng, 50, 2)
    env = step(program, {"x": x, "h": h})
    ops = {}
    for op in program.ops:  # the first op of each kind
        ops.setdefault(op.kind, op)
    mac = ops[VecKind.MAC]
    # the common input type has H's 3 fractional bits: x moves one bit up
    joined = np.concatenate([x << 1, h], axis=1)
    np.testing.assert_array_equal(env[mac.out], joined @ mac.weights + mac.bias)
    pre = env[mac.out][:, :2]
    q = requantize(pre, mac.type.frac, table_type, Rounding.CONVERGENT, Overflow.SATURATE)
    np.testing.assert_array_equal(env[ops[VecKind.TABLE].out], q // 4)
    g = env[ops[VecKind.REQUANT].out]
    np.testing.assert_array_equal(env[ops[VecKind.RSUB].out], 4 - g)
    assert (g >= 0).all()


def test_sequences_restart_from_zero_state():
    program, _ = _program(2)
    rng = np.random.default_rng(3)
    x = _extremes(X, rng, 6, 3).reshape(2, 3, 3)
    both = run_sequence(program, x, True)
    first = run_sequence(program, x[:1], True)
    np.testing.assert_array_equal(both[:1], first)
    assert both.shape == (2, 3, 2)
    np.testing.assert_array_equal(run_sequence(program, x, False), both[:, -1])
