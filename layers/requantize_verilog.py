"""A saturating requantizer (`requantize.Requantize`) as Verilog text, straight from its types.

Why text: a layer's `Requantize` is small beside its MAC array, but once the arrays were
text (`mac_verilog`) it was most of what Amaranth's per-bit netlist, RTLIL and Yosys still
converted in a small network: ~70 % of the back end of a 1 k-multiplier MLP (its two
requantizers were 82 % of the top's RTLIL), the fixed cost that kept small models above
0.5 ms of conversion per multiplier (issue 20). Writing it is a loop over its elements.

`requantize_verilog(rq, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names (``valid_<k>``, ``out_0``; none at latency 0), the same
clock enable (``advance = ~o.valid | o.ready``), reset (valid bits only, synchronous) and
initial values (0), and the same logic as `Requantize._saturating`: the floored accumulator
(sign-extended so that every dropped bit and one kept bit exist), the rounding increment
from the dropped bits (convergent, half-up or none), the over/under flags as
`requantize._greater`'s sign-and-high-bits forms where the bound allows (else a compare),
with the tie of an increment at the bound, and ``over ? high : under ? low : kept + inc``.
tests/layers/test_requantize_verilog.py proves the two equivalent with Yosys. A wrapping
requantizer is not written as text (`supported`): Amaranth converts it as before. With two
register stages (latency 2, a deep rounding) the first holds, per element, the kept bits,
the increment and the over/under flags and ties (``kept_<k>``, ``inc_<k>``, ``over_<k>``,
``over_tie_<k>``, ``under_<k>``, ``under_tie_<k>``, as `Requantize` names them), the second
their combination (``out_0``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtlgen.quant.fixed import Overflow, Rounding

from .mac_verilog import _hex, module_head, valid_chain

if TYPE_CHECKING:
    from .requantize import Requantize


def supported(rq: Requantize) -> bool:
    """Whether `requantize_verilog` writes ``rq``: saturation (any latency, 0 to 2)."""
    return rq.overflow is Overflow.SATURATE


def _signed_const(value: int, width: int) -> str:
    return f"{width}'sh{value & ((1 << width) - 1):x}"


class _Floor:
    """The floored accumulator of one element: a wire ``name`` of ``width`` bits, signed or
    not, known to lie in [lo, hi]."""

    def __init__(self, name: str, width: int, signed: bool, lo: int, hi: int):
        self.name, self.width, self.signed, self.lo, self.hi = name, width, signed, lo, hi

    def as_signed(self) -> str:
        return f"$signed({self.name})" if self.signed else f"$signed({{1'b0, {self.name}}})"

    def compare(self, op: str, c: int) -> str:
        width = max(self.width + 1, c.bit_length() + 2)
        return f"({self.as_signed()} {op} {_signed_const(c, width)})"

    def known(self, c: int) -> bool:
        """Whether ``v > c`` is known from the range alone (`_greater` answers a Const)."""
        return self.hi <= c or self.lo > c

    def greater(self, c: int) -> str:
        """`requantize._greater`: ``v > c``, cheap for the usual bounds."""
        if self.hi <= c:
            return "1'h0"
        if self.lo > c:
            return "1'h1"
        width = self.width
        top = width - 1 if self.signed else width  # bits above `top` are sign
        negative = f"{self.name}[{width - 1}]" if self.signed else None
        bound = c + 1
        if bound > 0 and bound & (bound - 1) == 0:
            k = bound.bit_length() - 1
            if k >= top:
                return "1'h0"
            high = f"(|{self.name}[{top - 1}:{k}])"
            return high if negative is None else f"(~{negative} & {high})"
        if bound < 0 and (-bound) & (-bound - 1) == 0:
            k = (-bound).bit_length() - 1
            if k >= top:
                return "1'h1"
            high = f"(&{self.name}[{top - 1}:{k}])"
            return high if negative is None else f"(~{negative} | {high})"
        if bound == 0:
            return "1'h1" if negative is None else f"~{negative}"
        return self.compare(">", c)

    def less(self, c: int) -> str:
        """``v < c``."""
        return _not(self.greater(c - 1))

    def low_bits(self, width: int) -> str:
        """The low ``width`` bits of the value (sign- or zero-extended)."""
        if self.width >= width:
            return f"{self.name}[{width - 1}:0]"
        extra = width - self.width
        fill = f"{self.name}[{self.width - 1}]" if self.signed else "1'b0"
        return f"{{{{{extra}{{{fill}}}}}, {self.name}}}"


def _not(term: str) -> str:
    return {"1'h0": "1'h1", "1'h1": "1'h0"}.get(term, f"~{term}")


def _or(a: str, b: str) -> str:
    if a == "1'h1" or b == "1'h1":
        return "1'h1"
    if a == "1'h0":
        return b
    return a if b == "1'h0" else f"({a} | {b})"


def _and(a: str, b: str) -> str:
    if a == "1'h0" or b == "1'h0":
        return "1'h0"
    if a == "1'h1":
        return b
    return a if b == "1'h1" else f"({a} & {b})"


def requantize_verilog(rq: Requantize, name: str) -> str:
    """The Verilog module ``name`` of ``rq`` (see the module doc); ``supported(rq)``."""
    if not supported(rq):
        raise ValueError("requantize_verilog: a wrapping Requantize")
    acc, out = rq.acc_type, rq.out_type
    in_width, width, shift = acc.width, out.width, rq.shift
    low_bound, high_bound = rq._bounds()
    decls: list[str] = []
    assigns: list[str] = []
    loads: list[str] = []  # the first register stage of a two-stage requantizer
    results: list[str] = []
    two_stage = rq.latency == 2

    def first_stage(name: str, value: str, width: int = 1) -> str:
        """With two stages, ``value`` registered as ``name`` (as `Requantize._saturating`
        registers it); else ``value`` itself."""
        if not two_stage:
            return value
        decls.append(f"reg [{width - 1}:0] {name} = {_hex(0, width)};")
        loads.append(f"{name} <= {value};")
        return name

    for k, (lo, hi) in enumerate(rq.in_ranges):
        element = f"i__payload[{(k + 1) * in_width - 1}:{k * in_width}]"
        increment = "1'h0"
        if shift <= 0:
            floor_width = in_width - shift
            decls.append(f"wire [{floor_width - 1}:0] f{k};")
            value = element if shift == 0 else f"{{{element}, {-shift}'h0}}"
            assigns.append(f"assign f{k} = {value};")
            floor = _Floor(f"f{k}", floor_width, acc.signed, lo << -shift, hi << -shift)
        else:
            ext_width = max(in_width, shift + 1)
            decls.append(f"wire [{ext_width - 1}:0] x{k};")
            if ext_width > in_width:
                sign = f"i__payload[{(k + 1) * in_width - 1}]" if acc.signed else "1'b0"
                value = f"{{{{{ext_width - in_width}{{{sign}}}}}, {element}}}"
            else:
                value = element
            assigns.append(f"assign x{k} = {value};")
            floor_width = ext_width - shift
            decls.append(f"wire [{floor_width - 1}:0] f{k};")
            assigns.append(f"assign f{k} = x{k}[{ext_width - 1}:{shift}];")
            floor = _Floor(f"f{k}", floor_width, acc.signed, lo >> shift, hi >> shift)
            half = f"x{k}[{shift - 1}]"
            if rq.rounding is Rounding.HALF_UP:
                increment = half
            elif rq.rounding is Rounding.CONVERGENT:
                below = f"(|x{k}[{shift - 2}:0])" if shift > 1 else "1'h0"
                increment = _and(half, _or(below, f"x{k}[{shift}]"))
            if increment not in ("1'h0", "1'h1") and not two_stage:
                decls.append(f"wire inc{k};")
                assigns.append(f"assign inc{k} = {increment};")
                increment = f"inc{k}"
        # Amaranth registers every flag but a constant (`_greater`'s early answers)
        kept = first_stage(f"kept_{k}", floor.low_bits(width), width)
        increment = first_stage(f"inc_{k}", increment)
        over = "1'h0"
        if floor.hi + 1 > high_bound:
            over = floor.greater(high_bound)
            if not floor.known(high_bound):
                over = first_stage(f"over_{k}", over)
            if floor.lo <= high_bound <= floor.hi:
                tie = first_stage(f"over_tie_{k}", floor.compare("==", high_bound))
                over = _or(over, _and(increment, tie))
        under = "1'h0"
        if floor.lo < low_bound:
            under = first_stage(f"under_{k}", floor.less(low_bound - 1))
            if floor.lo <= low_bound - 1 <= floor.hi:
                tie = first_stage(f"under_tie_{k}", floor.compare("==", low_bound - 1))
                under = _or(under, _and(_not(increment), tie))
        if increment == "1'h0":
            inside = kept
        elif width == 1:
            inside = f"({kept} ^ {increment})"
        else:
            inside = f"({kept} + {{{width - 1}'h0, {increment}}})"
        decls.append(f"wire [{width - 1}:0] r{k};")
        value = inside
        if under != "1'h0":
            value = f"{under} ? {_hex(low_bound, width)} : {value}"
        if over != "1'h0":
            value = f"{over} ? {_hex(high_bound, width)} : ({value})"
        assigns.append(f"assign r{k} = {value};")
        results.append(f"r{k}")
    total = rq.n * width
    packed = "{" + ", ".join(reversed(results)) + "}"
    latency = rq.latency
    lines = module_head(name, rq.n * in_width, total, latency)
    if latency:
        decls.append(f"reg [{total - 1}:0] out_0 = {_hex(0, total)};")
    lines += [f"  {d}" for d in decls]
    lines += valid_chain(latency)
    lines += [f"  {a}" for a in assigns]
    if latency:
        lines += [
            "  assign o__payload = out_0;",
            "  always @(posedge clk)",
            "    if (advance) begin",
            *[f"      {load}" for load in loads],
            f"      out_0 <= {packed};",
            "    end",
        ]
    else:
        lines.append(f"  assign o__payload = {packed};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
