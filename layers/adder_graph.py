"""The shift-and-add plan of a constant matrix-vector product (pure Python, no hardware).

`plan_matvec` turns ``y = x @ W + b`` (``W`` a constant integer (K, O) matrix) into a graph
of two-input adders over the inputs, then schedules it into pipeline stages:

1. every non-zero weight becomes *terms* ``sign * (node << shift)``: one per CSD digit
   (``lut``), or one term on a constant product node ``x * odd`` (``dsp``: a ``*`` that
   synthesis maps to a DSP; the product of an input by one odd constant is built once and
   shared by every column that needs it). Zero weights give no term at all.
2. common-subexpression elimination across columns (greedy, most frequent first, as in
   Hartley's method and da4ml): a pair ``a + -(b << d)`` that occurs in several columns
   (at any common shift) is built once as a new node and replaces each occurrence. This
   subsumes sharing ``x * |w|`` between columns and any repeated pair of inputs. For very
   large matrices (``cse="auto"``) only pairs of terms of one input are tracked.
3. each column's remaining terms (and its bias) are summed by an adder tree built
   earliest-available-first, so the tree is as shallow as the arrival times allow. Which
   items of equal arrival share an adder is the cheapest of `TREE_ORDERS` in adder bits
   (`MatVecPlan.carry_bits`), each adder oriented to compute its sum or minus its sum so
   that a positive unshifted operand passes its low bits through (`_orient`).
4. scheduling: a node's value is available at ``(cycle, depth)`` (``depth`` adders after
   the last register). An adder whose depth would exceed ``levels_per_stage`` starts a new
   cycle instead: its operands are registered. Outputs are registered at the end, or left
   combinational for a consumer that registers (``output_levels``).

Every node carries its exact linear form over the inputs, so value ranges (and thus
bit widths) are exact intervals, and the plan can be evaluated numerically (`evaluate`).
"""

from __future__ import annotations

import contextlib
import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .common import Multiplier
from .csd import csd_digits, odd_part

MULTIPLIER_MODES = tuple(Multiplier)
CSE_MODES = ("auto", "full", "products", "none")
FULL_CSE_PAIRS = 1_500_000  # above this, "auto" CSE shares only products (time, memory)


class Term(NamedTuple):
    """``sign * (node << shift)``."""

    node: int
    shift: int
    sign: int


@dataclass
class PlanNode:
    """A value in the plan. ``kind``: ``input``, ``const``, ``mul``, ``add`` or ``neg``.

    - ``input``: input element ``index``;
    - ``const``: the constant ``factor``;
    - ``mul``: input ``index`` times the odd constant ``factor`` (registered product);
    - ``add``: the sum of the two ``operands``, one of which has shift 0;
    - ``neg``: minus its single operand.
    """

    kind: str
    index: int = -1
    factor: int = 0
    operands: tuple[Term, ...] = ()
    coeffs: dict[int, int] = field(default_factory=dict)  # value = sum coeffs[i] * x[i] + offset
    offset: int = 0
    lo: int = 0
    hi: int = 0
    cycle: int = 0
    depth: int = 0
    shared: bool = False  # created by common-subexpression elimination


@dataclass
class MatVecPlan:
    nodes: list[PlanNode]
    outputs: list[Term | None]  # per column; None: the column is the constant `bias` value
    bias: list[int]
    out_ranges: list[tuple[int, int]]
    latency: int
    registered_output: bool  # False: outputs are combinational in cycle `latency`
    output_depth: int  # adders in series on the combinational outputs (0 when registered)
    multipliers: int  # distinct non-trivial constant products (input, odd |w| > 1)
    nonzero_weights: int

    @property
    def adders(self) -> int:
        return sum(1 for n in self.nodes if n.kind in ("add", "neg"))

    @property
    def dsp_multipliers(self) -> int:
        return sum(1 for n in self.nodes if n.kind == "mul")

    @property
    def adder_bits(self) -> int:
        """Sum of adder result widths: a rough LUT estimate."""
        return sum(width_of(n.lo, n.hi) for n in self.nodes if n.kind in ("add", "neg"))

    @property
    def carry_bits(self) -> int:
        """Adder bits outside the pass-through: per adder its result width, less the low
        ``d`` bits of an ``a + (b << d)`` whose unshifted operand ``a`` is positive (they
        are ``a``'s own bits). About one LUT and one carry-chain bit each: the LUT
        estimate the adder trees are chosen by."""
        bits = 0
        for n in self.nodes:
            if n.kind in ("add", "neg"):
                bits += width_of(n.lo, n.hi)
            if n.kind == "add" and len(n.operands) == 2:
                low, high = n.operands
                if low.shift == 0 and low.sign > 0 and high.shift > 0:
                    a = self.nodes[low.node]
                    bits -= min(high.shift, width_of(a.lo, a.hi))
        return bits

    def mapped_luts(self, in_width: int, in_signed: bool) -> int:
        """The LUTs Yosys ``synth_xilinx`` maps the adders to, as `mac_verilog` writes them
        (inputs ``in_width`` bits, signed or not): per result bit outside the pass-through,
        one LUT where both operands have a bit there (a sign extension counts as a bit), or
        where a subtraction inverts the one operand bit there; a bit of one operand alone in
        a sum is the carry chain's (no LUT); a negation is a LUT per bit. Within 1.5 % of
        the SVHN CNN's arrays synthesized alone (benchmarks/results/svhn_qp6_lut_parts.json:
        ``estimated_luts`` beside ``luts``); the adders' bits where both operands are real
        are ~90 % of it."""

        def bits(t: Term) -> tuple[int, bool]:
            n = self.nodes[t.node]
            return (in_width, in_signed) if n.kind == "input" else (width_of(n.lo, n.hi), n.lo < 0)

        total = 0
        for n in self.nodes:
            if n.kind == "neg":
                total += width_of(n.lo, n.hi)
            if n.kind != "add":
                continue
            to = width_of(n.lo, n.hi)
            spans = [(t.shift, *bits(t)) for t in n.operands]  # (shift, width, signed)
            subtract = any(t.sign < 0 for t in n.operands)
            start = 0
            if len(n.operands) == 2:
                low, high = n.operands
                if low.shift == 0 and low.sign > 0 and 0 < high.shift < min(spans[0][1], to):
                    start = high.shift  # the low operand's bits pass through (`mac_verilog`)
            for i in range(start, to):
                real = sum(
                    shift <= i and (i < shift + width or signed) for shift, width, signed in spans
                )
                if real >= 2 or (subtract and real == 1):
                    total += 1
        return total

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """(N, K) int inputs -> (N, O) outputs, by walking the adder graph."""
        x = np.asarray(x, dtype=object)
        values: list[np.ndarray] = []
        for n in self.nodes:
            if n.kind == "input":
                v = x[:, n.index]
            elif n.kind == "const":
                v = np.full(x.shape[0], n.factor, dtype=object)
            elif n.kind == "mul":
                v = x[:, n.index] * n.factor
            else:
                v = sum(t.sign * (values[t.node] * (1 << t.shift)) for t in n.operands)
            values.append(v)
        out = np.empty((x.shape[0], len(self.outputs)), dtype=object)
        for j, t in enumerate(self.outputs):
            out[:, j] = self.bias[j] if t is None else t.sign * values[t.node] * (1 << t.shift)
        return out.astype(np.int64)


def width_of(lo: int, hi: int) -> int:
    """Bits of the narrowest (signed if lo < 0) integer holding [lo, hi]."""
    if lo < 0:
        return max(hi.bit_length(), (-lo - 1).bit_length()) + 1
    return max(hi.bit_length(), 1)


def use_dsp(mode: Multiplier, weight: int, in_lo: int, in_hi: int, narrow_bits: int = 10) -> bool:
    """Whether the product by ``weight`` is a ``*`` (DSP) rather than shift-and-add."""
    odd, _ = odd_part(weight)
    if odd <= 1:
        return False  # 0 or +-2**k: a wire
    if mode == Multiplier.DSP:
        return True
    if mode == Multiplier.LUT:
        return False
    product_bits = width_of(min(in_lo * odd, in_hi * odd), max(in_lo * odd, in_hi * odd))
    return len(csd_digits(odd)) > 2 and product_bits > narrow_bits


class _Builder:
    def __init__(self, in_ranges: list[tuple[int, int]], levels_per_stage: int, input_levels: int):
        self.in_ranges = in_ranges
        self.levels = levels_per_stage
        self.input_levels = input_levels
        self.nodes: list[PlanNode] = []

    def _range(self, coeffs: dict[int, int], offset: int) -> tuple[int, int]:
        lo = hi = offset
        for i, c in coeffs.items():
            a, b = c * self.in_ranges[i][0], c * self.in_ranges[i][1]
            lo += min(a, b)
            hi += max(a, b)
        return lo, hi

    def _add_node(self, node: PlanNode) -> int:
        node.lo, node.hi = self._range(node.coeffs, node.offset)
        self.nodes.append(node)
        return len(self.nodes) - 1

    def input(self, index: int) -> int:
        return self._add_node(
            PlanNode("input", index=index, coeffs={index: 1}, depth=self.input_levels)
        )

    def const(self, value: int) -> int:
        return self._add_node(PlanNode("const", factor=value, offset=value))

    def mul(self, index: int, factor: int, source: int) -> int:
        s = self.nodes[source]
        # The product is registered (DSP M/P register): available one cycle after its input.
        return self._add_node(
            PlanNode("mul", index=index, factor=factor, coeffs={index: factor}, cycle=s.cycle + 1)
        )

    def preview(self, parts: list[tuple[PlanNode, int, int]], kind: str = "add") -> PlanNode:
        """The node summing ``sign * (node << shift)`` over ``parts`` (not added to the plan):
        its linear form, range and schedule."""
        coeffs: dict[int, int] = {}
        offset = 0
        disjoint = True  # no input in two parts: the range is the sum of the parts' ranges
        lo = hi = 0
        for n, shift, sign in parts:
            for i, c in n.coeffs.items():
                if i in coeffs:
                    disjoint = False
                    coeffs[i] += sign * (c << shift)
                else:
                    coeffs[i] = sign * (c << shift)
            offset += sign * (n.offset << shift)
            if sign > 0:
                lo, hi = lo + (n.lo << shift), hi + (n.hi << shift)
            else:
                lo, hi = lo - (n.hi << shift), hi - (n.lo << shift)
        cycle = max(n.cycle for n, _, _ in parts)
        depth = 1 + max(n.depth if n.cycle == cycle else 0 for n, _, _ in parts)
        if depth > self.levels:
            cycle, depth = cycle + 1, 1
        node = PlanNode(
            kind,
            coeffs=coeffs if disjoint else {i: c for i, c in coeffs.items() if c},
            offset=offset,
            cycle=cycle,
            depth=depth,
        )
        if disjoint:
            node.lo, node.hi = lo, hi
        else:
            node.lo, node.hi = self._range(node.coeffs, node.offset)
        return node

    def combine(self, operands: tuple[Term, ...], kind: str = "add", shared: bool = False) -> int:
        node = self.preview([(self.nodes[t.node], t.shift, t.sign) for t in operands], kind)
        node.operands = operands
        node.shared = shared
        return self._add_node(node)

    def value_of(self, item: Term | _Sum) -> PlanNode:
        """The node of a term, or the value of a partial sum not built yet."""
        return self.nodes[item.node] if isinstance(item, Term) else item.value


#: A column's group of at least this many terms has its pattern keys computed by numpy,
#: with every other such group's that a pattern occurs in (`_Rows`).
GROUP_ARRAYS = 32
#: a pattern's count changes settle in Python below this many keys, else in numpy
SETTLE_ARRAYS = 256


def _pair_key(n: int, s: int, g: int, n2: int, s2: int, g2: int, radix: int, span: int) -> int:
    """The pattern of terms ``(n, s, g)`` and ``(n2, s2, g2)`` of one column: ordered by
    (shift, node), ``rel`` the product of the signs."""
    if s < s2 or (s == s2 and n < n2):
        return ((n * radix + n2) * span + s2 - s) * 2 + (g == g2)
    return ((n2 * radix + n) * span + s - s2) * 2 + (g == g2)


class _Group:
    """The terms of one column that may pair (the column's, or with ``products_only`` its
    terms of one input): (node, shift) -> sign; a large group's terms are also row ``row``
    of `_Rows`."""

    __slots__ = ("signs", "row")

    def __init__(self, signs: dict[tuple[int, int], int], row: int | None = None):
        self.signs, self.row = signs, row

    def keys_with(self, n: int, s: int, g: int, radix: int, span: int) -> list[int]:
        """The patterns of term ``(n, s, g)`` (not a member) with each member."""
        return [_pair_key(n, s, g, n2, s2, g2, radix, span) for (n2, s2), g2 in self.signs.items()]


class _Rows:
    """The large groups' terms as rows of numpy arrays, so that one pattern's occurrences
    in many columns change their pairs in one computation: the Python loop over a few
    hundred terms per occurrence was most of the CSE's time (a 3x3x8 conv: 16 columns of
    ~200 terms). A row's live terms are its first ``size`` slots (a removed term's slot
    takes the row's last). Per term, what its pattern keys are made of: with ``order =
    shift * radix + node`` the lower of a pair, the key is ``low(n, s) + high(n2, s2) +
    (g == g2)`` (`_pair_key` regrouped), ``low = 2 span radix n - 2 s``, ``high = 2 span n
    + 2 s``."""

    def __init__(self, groups: list[_Group], radix: int, span: int):
        # a group never takes more new terms than it had (each replaces two)
        width = 2 * max((len(group.signs) for group in groups), default=0)
        self.radix, self.span = radix, span
        # per term: order, low, high, sign (one array: one copy or gather moves them all)
        self.parts = np.zeros((4, len(groups), width), dtype=np.int64)
        self.size = np.zeros(len(groups), dtype=np.int64)
        self.slot: list[dict[tuple[int, int], int]] = [{} for _ in groups]
        for row, group in enumerate(groups):
            group.row = row
            items = list(group.signs.items())
            terms = np.array([(n, s, g) for (n, s), g in items], dtype=np.int64).reshape(-1, 3)
            self.parts[:, row, : len(items)] = self._parts(terms)
            self.size[row] = len(items)
            self.slot[row] = {key: p for p, (key, _) in enumerate(items)}

    def _parts(self, terms: np.ndarray) -> np.ndarray:
        """(order, low, high, sign) of ``terms`` (..., node/shift/sign): shape (4, ...)."""
        node, shift, sign = terms[..., 0], terms[..., 1], terms[..., 2]
        return np.stack(
            [
                shift * self.radix + node,
                2 * self.span * self.radix * node - 2 * shift,
                2 * self.span * node + 2 * shift,
                sign,
            ]
        )

    @staticmethod
    def _keys(parts: np.ndarray, others: np.ndarray) -> np.ndarray:
        """`_pair_key` elementwise (broadcast) of terms' `_parts` and others'."""
        order, low, high, sign = parts
        order2, low2, high2, sign2 = others
        return np.where(order < order2, low + high2, low2 + high) + (sign == sign2)

    def all_keys(self) -> np.ndarray:
        """The patterns of every pair of terms of each row."""
        keys = []
        for row in range(len(self.size)):
            p, q = np.triu_indices(int(self.size[row]), 1)
            keys.append(self._keys(self.parts[:, row, p], self.parts[:, row, q]))
        return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)

    def remove(self, row: int, n: int, s: int) -> None:
        slots = self.slot[row]
        at = slots.pop((n, s))
        last = int(self.size[row]) - 1
        if at != last:  # the last term takes the slot
            self.parts[:, row, at] = self.parts[:, row, last]
            shift, node = divmod(int(self.parts[0, row, at]), self.radix)
            slots[(node, shift)] = at
        self.size[row] = last

    def replace(self, rows: list[int], terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """In each of ``rows`` (distinct), the terms ``terms[k, 0]`` and ``terms[k, 1]`` out
        and ``terms[k, 2]`` in (``terms``: (rows, 3 terms, node/shift/sign)): the patterns
        of the pairs that go (the old terms' with the rest; not with each other) and of
        those that come."""
        for k, row in enumerate(rows):
            for t in (0, 1):
                self.remove(row, int(terms[k, t, 0]), int(terms[k, t, 1]))
        r = np.asarray(rows)
        size = self.size[r]
        width = int(size.max())
        parts = self._parts(terms)  # (4, rows, 3)
        if len(rows) == 1:
            members = self.parts[:, rows[0], None, None, :width]
        else:
            members = self.parts[:, r, None, :width]
        keys = self._keys(parts[..., None], members)  # (rows, 3, width)
        live = np.arange(width) < size[:, None]
        gone = keys[:, :2][np.broadcast_to(live[:, None, :], (len(rows), 2, width))]
        come = keys[:, 2][live]
        self.parts[:, r, size] = parts[:, :, 2]
        self.size[r] = size + 1
        for k, row in enumerate(rows):
            self.slot[row][(int(terms[k, 2, 0]), int(terms[k, 2, 1]))] = int(size[k])
        return gone, come


def _eliminate_common_pairs(
    builder: _Builder, columns: list[dict[tuple[int, int], int]], products_only: bool
) -> None:
    """Greedy two-term CSE across columns, in place on ``columns`` ((node, shift) -> sign).

    A pattern ``(a, b, d, rel)`` is the value ``a + rel * (b << d)``; it occurs in a column
    holding terms ``(a, s, g)`` and ``(b, s + d, rel * g)`` (for ``d == 0``: ``a < b``).
    The pattern chosen next is the most frequent one (each occurrence beyond the first
    saves one adder). ``products_only`` pairs only terms of the same input (sharing
    ``x * |w|`` between columns): far fewer pairs to track, for large matrices.
    """
    nodes = builder.nodes

    def group_of(n: int) -> int:
        if not products_only:
            return 0
        coeffs = nodes[n].coeffs
        return next(iter(coeffs)) if len(coeffs) == 1 else -1 - n  # a group of its own

    # A pattern is one integer, ordered as the tuple (a, b, d, rel) is: node ids stay below
    # `radix` (each new node replaces at least two terms) and shifts below `span`.
    radix = len(nodes) + sum(len(col) for col in columns) + 1
    span = 1 + max((s for col in columns for _, s in col), default=0)
    arrays = radix * radix * span * 2 < 2**62  # numpy's int64 holds every pattern

    # count[k] - removed[k]: the occurrences of pattern k (two counters: Counter.update
    # counts a list of patterns in C)
    count: Counter[int] = Counter()
    removed: Counter[int] = Counter()
    node_cols: dict[int, set[int]] = defaultdict(set)
    col_shifts: list[dict[int, set[int]]] = [defaultdict(set) for _ in columns]
    col_groups: list[dict[int, _Group]] = []
    large: list[_Group] = []
    for j, col in enumerate(columns):
        members: dict[int, dict[tuple[int, int], int]] = defaultdict(dict)
        for (n, s), g in col.items():
            node_cols[n].add(j)
            col_shifts[j][n].add(s)
            members[group_of(n)][(n, s)] = g
        col_groups.append({key: _Group(signs) for key, signs in members.items()})
        for group in col_groups[j].values():
            if arrays and len(group.signs) >= GROUP_ARRAYS:
                large.append(group)
                continue
            items = sorted(group.signs.items(), key=lambda item: (item[0][1], item[0][0]))
            count.update(
                ((n1 * radix + n2) * span + s2 - s1) * 2 + (g1 == g2)
                for p, ((n1, s1), g1) in enumerate(items)
                for (n2, s2), g2 in items[p + 1 :]
            )
    rows = _Rows(large, radix, span)
    only_rows = None  # (patterns, counts) counted twice, when every pair is in `rows`
    if large:
        keys, times = np.unique(rows.all_keys(), return_counts=True)
        if count:
            for k, c in zip(keys.tolist(), times.tolist(), strict=True):
                count[k] += c
        else:
            only_rows = keys[times >= 2], times[times >= 2]

    # The next pattern: the highest count, then the smallest key (deterministic; prefers
    # older, narrower nodes). A heap of (-count, key) entries, lazily cleaned: a count that
    # rises pushes a new entry, one that falls leaves its entry stale, to be re-pushed with
    # the current count when it comes up. Every pattern counted >= 2 has an entry at least
    # as high as its count, so the first entry matching its count is the one to take.
    # (The plain occurrence count: weighting it by adder width, da4ml's "wmc", measured no
    # better on random 6-bit matrices.) The patterns counted now come in sorted order from
    # `first` (most of them stale by their turn: no heap operations for them), those
    # pushed since from `heap`, the smaller head each time.
    banned: set[int] = set()
    if only_rows is not None:
        keys, times = only_rows
        twice = dict(zip(keys.tolist(), times.tolist(), strict=True))
    else:
        twice = {k: c for k, c in count.items() if c >= 2}
    if arrays:
        keys = np.fromiter(twice.keys(), dtype=np.int64, count=len(twice))
        times = np.fromiter(twice.values(), dtype=np.int64, count=len(twice))
        order = np.lexsort((keys, -times))
        first = list(zip((-times[order]).tolist(), keys[order].tolist(), strict=True))
        # a first sieve of the pairs that went: the patterns counted twice or new, by their
        # low bits (those that pass are looked up in `count`)
        counted = np.zeros(1 << 20, dtype=bool)
        counted[keys & ((1 << 20) - 1)] = True
    else:
        first = sorted((-c, k) for k, c in twice.items())
    heap: list[tuple[int, int]] = []
    # A pattern counted once or less stays so (only a new node's pairs are new): from here
    # `count` holds only the patterns counted twice and the new ones, and the pairs that
    # go are counted (in `removed`) for those only.
    count = Counter(twice)

    def flat(parts: list) -> list[int]:
        return [
            k for part in parts for k in (part.tolist() if isinstance(part, np.ndarray) else part)
        ]

    def settle(gone: list, come: list, pairs: list[int], again: bool) -> None:
        """Count the pairs that went and came with one pattern's node (``gone``, ``come``:
        lists and arrays of patterns; ``pairs``: each occurrence's own pair; ``again``: a
        column had several occurrences, so some of the new pairs went again); push the new
        patterns that occur twice."""
        if not arrays or sum(map(len, gone)) + sum(map(len, come)) < SETTLE_ARRAYS:
            for k in flat(gone) + pairs:
                count[k] -= 1
            came = flat(come)
            count.update(came)
            pushed = []
            for k in set(came):
                c = count[k] - removed.get(k, 0)
                if c >= 2:
                    heapq.heappush(heap, (-c, k))
                    pushed.append(k)
            if arrays and pushed:
                counted[np.array(pushed, dtype=np.int64) & ((1 << 20) - 1)] = True
            return
        removed.update(filter(count.__contains__, pairs))
        went = np.concatenate([np.asarray(part, dtype=np.int64) for part in gone])
        # the patterns that came have the new node: their count is their number here
        keys, times = np.unique(
            np.concatenate([np.asarray(p, dtype=np.int64) for p in come]), return_counts=True
        )
        if again and len(keys):
            at = np.minimum(np.searchsorted(keys, went), len(keys) - 1)
            fresh = keys[at] == went
            np.subtract.at(times, at[fresh], 1)
            went = went[~fresh]
        went = went[counted[went & ((1 << 20) - 1)]]
        removed.update(filter(count.__contains__, went.tolist()))
        twice = times >= 2
        pushed = list(zip(keys[twice].tolist(), times[twice].tolist(), strict=True))
        dict.update(count, pushed)
        for k, c in pushed:
            heapq.heappush(heap, (-c, k))
        counted[keys[twice] & ((1 << 20) - 1)] = True

    taken = 0
    while True:
        if heap and (taken == len(first) or heap[0] < first[taken]):
            negative, k = heapq.heappop(heap)
        elif taken < len(first):
            negative, k = first[taken]
            taken += 1
        else:
            break
        c = count.get(k, 0) - removed.get(k, 0)
        if c != -negative or k in banned:
            if c < -negative and c >= 2 and k not in banned:
                heapq.heappush(heap, (-c, k))  # stale (fell since): at its current count
            continue
        rel = 1 if k & 1 else -1
        a, rest = divmod(k >> 1, radix * span)
        b, d = divmod(rest, span)
        occurrences: list[tuple[int, int, int]] = []  # (column, shift of a, sign of a)
        for j in sorted(node_cols[a] & node_cols[b]):
            col = columns[j]
            used: set[int] = set()
            for s in sorted(col_shifts[j][a]):
                gb = col.get((b, s + d))
                if gb is None or col[(a, s)] * gb != rel or s in used or s + d in used:
                    continue
                if a == b:
                    used.update((s, s + d))
                occurrences.append((j, s, col[(a, s)]))
        if len(occurrences) < 2:
            banned.add(k)  # only overlapping occurrences: not worth a node
            continue
        new = builder.combine((Term(a, 0, 1), Term(b, d, rel)), shared=True)
        own = group_of(new)  # a and b share a group; new too unless its inputs cancel
        gone: list = []
        come: list = []
        pairs: list[int] = []
        rounds: list[list[tuple[int, np.ndarray]]] = []  # large groups' occurrences, in turn
        for j, s, g in occurrences:
            col = columns[j]
            ga, gb = col.pop((a, s)), col.pop((b, s + d))
            col[(new, s)] = g
            for n, shift in ((a, s), (b, s + d)):
                shifts = col_shifts[j][n]
                shifts.discard(shift)
                if not shifts:
                    del col_shifts[j][n]
                    node_cols[n].discard(j)
            col_shifts[j][new].add(s)
            node_cols[new].add(j)
            group = col_groups[j][group_of(a)]
            del group.signs[(a, s)], group.signs[(b, s + d)]
            pairs.append(_pair_key(a, s, ga, b, s + d, gb, radix, span))
            if own != group_of(a) or group.row is None:
                if group.row is not None:
                    rows.remove(group.row, a, s)
                    rows.remove(group.row, b, s + d)
                gone.append(group.keys_with(a, s, ga, radix, span))
                gone.append(group.keys_with(b, s + d, gb, radix, span))
                if own not in col_groups[j]:
                    col_groups[j][own] = _Group({})
                target = col_groups[j][own]
                come.append(target.keys_with(new, s, g, radix, span))
                target.signs[(new, s)] = g
                continue
            group.signs[(new, s)] = g
            terms = np.array([[a, s, ga], [b, s + d, gb], [new, s, g]], dtype=np.int64)
            turn = next((t for t in rounds if all(row != group.row for row, _ in t)), None)
            if turn is None:
                rounds.append(turn := [])
            turn.append((group.row, terms))
        for turn in rounds:
            went, came = rows.replace([row for row, _ in turn], np.stack([t for _, t in turn]))
            gone.append(went)
            come.append(came)
        settle(gone, come, pairs, len({j for j, _, _ in occurrences}) < len(occurrences))


class _Sum(NamedTuple):
    """A partial sum of a column's adder tree before it becomes a node: ``value << shift``
    is ``low + high`` (each a `Term` of an existing node or an earlier `_Sum`); ``value``
    is known by its linear form, range and schedule only (`_Builder.preview`)."""

    low: Term | _Sum
    high: Term | _Sum
    shift: int
    value: PlanNode


#: Orders of the items of one (cycle, depth) in a column's adder tree, by their lowest bit
#: ``s`` and highest bit ``t``: which pairs share an adder. Every order gives the same
#: schedule (the tree is built earliest-available-first), not the same adder bits.
TREE_ORDERS: tuple = (
    lambda s, t: (s, t),  # similar lowest bits first
    lambda s, t: (t, s),  # similar highest bits first
    lambda s, t: (-s, t),  # highest lowest bit first
    lambda s, t: (-t, s),  # widest first
)
TREE_ORDERS_MAX_TERMS = 48  # longer columns: the first order only (planning time)


def _tree(builder: _Builder, terms: list[Term], order) -> list[_Sum]:
    """The partial sums of an earliest-available-first adder tree over ``terms``, children
    before parents (the root last); ``order`` breaks ties between items of one
    (cycle, depth)."""

    def key(item: Term | _Sum) -> tuple:
        n = builder.value_of(item)
        return n.cycle, n.depth, *order(item.shift, item.shift + width_of(n.lo, n.hi))

    heap: list = [(key(t), p, t) for p, t in enumerate(terms)]
    heapq.heapify(heap)
    tiebreak = len(terms)
    sums: list[_Sum] = []
    while len(heap) > 1:
        _, _, t1 = heapq.heappop(heap)
        _, _, t2 = heapq.heappop(heap)
        low, high = sorted((t1, t2), key=lambda t: t.shift)
        parts = [
            (builder.value_of(t), t.shift - low.shift, t.sign if isinstance(t, Term) else 1)
            for t in (low, high)
        ]
        item = _Sum(low, high, low.shift, builder.preview(parts))
        sums.append(item)
        heapq.heappush(heap, (key(item), tiebreak, item))
        tiebreak += 1
    return sums


def _orient(builder: _Builder, sums: list[_Sum]) -> tuple[int, dict[int, int]]:
    """The cheapest orientation of each adder of a tree (`_tree`): its cost in adder
    bits (`carry_bits` of the adders, a negation of the root included) and, per sum's
    index, +1 (the node computes the sum) or -1 (minus the sum).

    An adder ``a + (b << d)`` whose lower-shifted operand ``a`` enters positively passes
    ``a``'s low ``d`` bits through (no adder bits there); ``-a + (b << d)`` does not, so
    it is cheaper as ``-(a - (b << d))``, its parent subtracting it instead of adding. An
    adder has at most one negative operand (else it is the other orientation). A negative
    root costs its column a negation. Two states per sum, children before parents."""
    index = {id(item): k for k, item in enumerate(sums)}

    def stored_range(item: Term | _Sum, o: int) -> tuple[int, int]:
        n = builder.value_of(item)
        return (n.lo, n.hi) if o > 0 else (-n.hi, -n.lo)

    def options(child: Term | _Sum) -> list[tuple[int, int]]:
        if isinstance(child, Term):
            return [(child.sign, 0)]  # a term's orientation is its sign
        return [(o, c[0]) for o, c in best[index[id(child)]].items()]

    # best[k][o]: (cost, orientation of low, of high) of sums[k]'s node computing o * sum
    best: list[dict[int, tuple[int, int, int]]] = []
    for item in sums:
        d = item.high.shift - item.low.shift
        choices: dict[int, tuple[int, int, int]] = {}
        for o in (1, -1):
            width = width_of(*stored_range(item, o))
            for ol, cl in options(item.low):
                for oh, ch in options(item.high):
                    if o * ol < 0 and o * oh < 0:
                        continue
                    bits = width
                    if d > 0 and o * ol > 0:
                        bits -= min(d, width_of(*stored_range(item.low, ol)))
                    if o not in choices or cl + ch + bits < choices[o][0]:
                        choices[o] = (cl + ch + bits, ol, oh)
        best.append(choices)
    negation = width_of(sums[-1].value.lo, sums[-1].value.hi)
    at_root = {o: c[0] + (negation if o < 0 else 0) for o, c in best[-1].items()}
    root = min(at_root, key=lambda o: (at_root[o], -o))
    orientation = {len(sums) - 1: root}
    for k in range(len(sums) - 1, -1, -1):  # parents before children
        _, ol, oh = best[k][orientation[k]]
        for child, oc in ((sums[k].low, ol), (sums[k].high, oh)):
            if isinstance(child, _Sum):
                orientation[index[id(child)]] = oc
    return at_root[root], orientation


def _sum_column(builder: _Builder, terms: list[Term]) -> Term:
    """The adder tree of one column's terms, as nodes; returns the term of its root
    (sign -1: the tree computes minus the column, the caller negates it).

    The tree is built earliest-available-first in each of `TREE_ORDERS`; the cheapest in
    adder bits with its adders' orientations (`_orient`) becomes nodes. All have the same
    schedule (logic depth, cycles)."""
    if len(terms) == 1:
        return terms[0]
    orders = TREE_ORDERS if len(terms) <= TREE_ORDERS_MAX_TERMS else TREE_ORDERS[:1]
    trees = [_tree(builder, terms, order) for order in orders]
    oriented = [(*_orient(builder, sums), p) for p, sums in enumerate(trees)]
    _, orientation, p = min(oriented, key=lambda c: (c[0], c[2]))
    sums = trees[p]
    index = {id(item): k for k, item in enumerate(sums)}
    built: list[Term] = []
    for k, item in enumerate(sums):
        o = orientation[k]
        ops = []
        for child in (item.low, item.high):
            t = child if isinstance(child, Term) else built[index[id(child)]]
            ops.append(Term(t.node, t.shift - item.shift, o * t.sign))
        # Operand with shift 0 first: its low bits pass through when it is positive.
        ops.sort(key=lambda t: (t.shift, -t.sign))
        v = item.value  # its linear form, range and schedule, negated for o = -1
        node = PlanNode(
            "add",
            operands=tuple(ops),
            coeffs=v.coeffs if o > 0 else {i: -c for i, c in v.coeffs.items()},
            offset=o * v.offset,
            lo=v.lo if o > 0 else -v.hi,
            hi=v.hi if o > 0 else -v.lo,
            cycle=v.cycle,
            depth=v.depth,
        )
        builder.nodes.append(node)
        built.append(Term(len(builder.nodes) - 1, item.shift, o))
    return built[-1]


#: plans kept while `reusing_plans` is active, by their arguments (None: not kept)
_kept_plans: dict | None = None


@contextlib.contextmanager
def reusing_plans():
    """Keep `plan_matvec`'s results until the outermost of these contexts ends, so that a
    planner probing many variants of one network (`rtlgen.plan`'s latency-budget search)
    plans each distinct matrix once. A plan is read only after it is made, so the same one
    may serve several `ConstantMatVec` components."""
    global _kept_plans
    if _kept_plans is not None:
        yield
        return
    _kept_plans = {}
    try:
        yield
    finally:
        _kept_plans = None


def plan_matvec(
    weights: np.ndarray,
    in_ranges: list[tuple[int, int]],
    bias: np.ndarray | None = None,
    multiplier: Multiplier = Multiplier.AUTO,
    levels_per_stage: int = 2,
    input_levels: int = 0,
    output_levels: int | None = None,
    cse: str = "auto",
) -> MatVecPlan:
    """Plan ``y = x @ weights + bias`` for x[i] in ``in_ranges[i]`` (see the module doc);
    the plan made earlier for the same arguments while `reusing_plans` is active."""
    args = (multiplier, levels_per_stage, input_levels, output_levels, cse)
    if _kept_plans is None:
        return _plan_matvec(weights, in_ranges, bias, *args)
    w = np.asarray(weights, dtype=np.int64)
    key = (
        w.shape,
        w.tobytes(),
        tuple((int(lo), int(hi)) for lo, hi in in_ranges),
        None if bias is None else tuple(int(v) for v in np.asarray(bias).reshape(-1)),
        *args,
    )
    if key not in _kept_plans:
        _kept_plans[key] = _plan_matvec(w, in_ranges, bias, *args)
    return _kept_plans[key]


def _plan_matvec(
    weights: np.ndarray,
    in_ranges: list[tuple[int, int]],
    bias: np.ndarray | None,
    multiplier: Multiplier,
    levels_per_stage: int,
    input_levels: int,
    output_levels: int | None,
    cse: str,
) -> MatVecPlan:
    """`plan_matvec`, always planned anew.

    ``levels_per_stage``: adders in series between pipeline registers. ``input_levels``:
    logic levels already spent on the inputs in their cycle (a combinational upstream).
    ``output_levels``: None registers the outputs; an int leaves them combinational and
    keeps that many levels of the last stage free for the consumer (e.g. a `Requantize`
    whose register then ends the stage).
    ``cse``: ``"full"`` (any pair of terms), ``"products"`` (pairs of terms of one input:
    shared ``x * |w|``), ``"none"``, or ``"auto"``: full unless a column has so many terms
    that tracking every pair would take long (more than `FULL_CSE_PAIRS` pairs in all).
    """
    if multiplier not in MULTIPLIER_MODES:
        raise ValueError(f"multiplier must be one of {MULTIPLIER_MODES}, got {multiplier!r}")
    if levels_per_stage < 1:
        raise ValueError("levels_per_stage must be at least 1")
    w = np.asarray(weights, dtype=np.int64)
    n_in, n_out = w.shape
    b = [0] * n_out if bias is None else [int(v) for v in np.asarray(bias).reshape(-1)]
    builder = _Builder(list(in_ranges), levels_per_stage, input_levels)
    inputs = [builder.input(i) for i in range(n_in)]
    products: dict[tuple[int, int], int] = {}
    nontrivial: set[tuple[int, int]] = set()
    columns: list[dict[tuple[int, int], int]] = [{} for _ in range(n_out)]
    # Only the non-zero weights are visited (row by row, as a loop over all would): a zero
    # weight costs no time. CSD digits are computed once per distinct value.
    digits_of: dict[int, list] = {}
    rows, cols = np.nonzero(w)
    for i, j, value in zip(rows.tolist(), cols.tolist(), w[rows, cols].tolist(), strict=True):
        lo, hi = in_ranges[i]
        odd, shift = odd_part(value)
        sign = 1 if value > 0 else -1
        if odd > 1:
            nontrivial.add((i, odd))
        if use_dsp(multiplier, value, lo, hi):
            if (i, odd) not in products:
                products[(i, odd)] = builder.mul(i, odd, inputs[i])
            columns[j][(products[(i, odd)], shift)] = sign
        else:
            digits = digits_of.get(value)
            if digits is None:
                digits = digits_of[value] = csd_digits(value)
            for digit in digits:
                columns[j][(inputs[i], digit.shift)] = digit.sign
    if cse not in CSE_MODES:
        raise ValueError(f"cse must be one of {CSE_MODES}, got {cse!r}")
    if cse == "auto":
        pairs = sum(len(col) * (len(col) - 1) // 2 for col in columns)
        cse = "full" if pairs <= FULL_CSE_PAIRS else "products"
    if cse != "none":
        _eliminate_common_pairs(builder, columns, products_only=cse == "products")

    outputs: list[Term | None] = []
    for j, col in enumerate(columns):
        terms = [Term(n, s, g) for (n, s), g in col.items()]
        if b[j] and terms:
            odd, shift = odd_part(b[j])
            terms.append(Term(builder.const(odd), shift, 1 if b[j] > 0 else -1))
        if not terms:
            outputs.append(None)
            continue
        final = _sum_column(builder, terms)
        if final.sign < 0 or builder.nodes[final.node].kind == "const":
            # An output is a node value: negate (an adder) or materialize a lone constant.
            if builder.nodes[final.node].kind == "const":
                outputs.append(None)
                continue
            final = Term(builder.combine((Term(final.node, 0, -1),), kind="neg"), final.shift, 1)
        outputs.append(final)

    out_ranges = []
    for j, t in enumerate(outputs):
        if t is None:
            out_ranges.append((b[j], b[j]))
        else:
            n = builder.nodes[t.node]
            out_ranges.append((n.lo << t.shift, n.hi << t.shift))
    ends = [
        (builder.nodes[t.node].cycle, builder.nodes[t.node].depth) for t in outputs if t is not None
    ]
    output_depth = 0
    if output_levels is None:
        latency = max((c for c, _ in ends), default=0) + 1
    else:
        latency = max(
            (c + (1 if d + output_levels > levels_per_stage else 0) for c, d in ends), default=0
        )
        # Logic depth of the outputs in their (last) cycle; earlier ones arrive registered.
        output_depth = max((d for c, d in ends if c == latency), default=0)
    return MatVecPlan(
        nodes=builder.nodes,
        outputs=outputs,
        bias=b,
        out_ranges=out_ranges,
        latency=latency,
        registered_output=output_levels is None,
        output_depth=output_depth,
        multipliers=len(nontrivial),
        nonzero_weights=int(np.count_nonzero(w)),
    )
