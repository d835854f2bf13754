"""Product registers into ECP5 multipliers: a rewrite of Yosys's `synth_ecp5` JSON netlist.

rtlgen registers every product (`p <= a * b`), and Vivado absorbs that register into the
DSP48. Yosys 0.70's `synth_ecp5` does not: it maps `a * b` to a MULT18X18D with every
register off and the product register to fabric flip-flops (TRELLIS_FF), so the multiplier's
array delay and two long routes (fabric -> DSP -> fabric) sit in one cycle.
`absorb_output_registers` moves such a register into the MULT18X18D (REG_OUTPUT_CLK=CLK0):
the same clock, clock enable and power-on value, so the netlist computes the same values
cycle for cycle; nextpnr then times the multiplier's inputs to its internal register and
its outputs from it.

    python -m rtlgen.boards.ecp5_dsp NETLIST.json [TOP]    # rewrites NETLIST.json in place

`rtlgen build` (boards/ecp5.py) runs it between Yosys and nextpnr-ecp5.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Absorbed", "absorb_output_registers", "rewrite_file"]

#: the fabric flip-flop parameters a MULT18X18D output register can take over: rising
#: clock, active-high clock enable (or none), no local set/reset; GSR value 0 (REGSET RESET)
_PLAIN_FF = {"CLKMUX": "CLK", "LSRMUX": "LSR", "REGSET": "RESET"}
_CONSTANT_ZERO = ("0",)


@dataclass(frozen=True)
class Absorbed:
    """What `absorb_output_registers` did: multipliers given an output register, fabric
    flip-flops removed, and multipliers left combinational (with why, by cell name)."""

    multipliers: int
    flip_flops: int
    skipped: tuple[tuple[str, str], ...] = ()


def _bit_users(module: dict) -> tuple[dict, dict]:
    """(sinks, drivers) of every net bit of `module`: bit -> [(cell, port)] / (cell, port);
    a module output port counts as a sink named ("", port)."""
    sinks: dict[int, list[tuple[str, str]]] = defaultdict(list)
    drivers: dict[int, tuple[str, str]] = {}
    for name, cell in module["cells"].items():
        for port, bits in cell["connections"].items():
            direction = cell["port_directions"].get(port, "input")
            for bit in bits:
                if isinstance(bit, str):
                    continue
                if direction == "input":
                    sinks[bit].append((name, port))
                else:
                    drivers[bit] = (name, port)
    for port, info in module["ports"].items():
        for bit in info["bits"]:
            if not isinstance(bit, str) and info["direction"] != "input":
                sinks[bit].append(("", port))
    return sinks, drivers


def _single_bit(cell: dict, port: str):
    bits = cell["connections"].get(port)
    return bits[0] if bits else None


def _register_of(cell_name: str, module: dict, sinks: dict) -> tuple[list, str | None]:
    """For a MULT18X18D: [(P port, flip-flop name)] for each used output bit, or a reason
    why its outputs are not one plain register (then the list is empty)."""
    cell = module["cells"][cell_name]
    pairs = []
    for port, bits in cell["connections"].items():
        if not (port.startswith("P") and port[1:].isdigit()):
            continue
        bit = bits[0]
        if isinstance(bit, str):
            continue
        users = sinks.get(bit, [])
        if not users:
            continue
        if len(users) != 1:
            return [], f"{port} drives {len(users)} sinks"
        ff_name, ff_port = users[0]
        ff = module["cells"].get(ff_name)
        if ff is None or ff["type"] != "TRELLIS_FF" or ff_port != "DI":
            return [], f"{port} drives {ff_name or 'a port'}.{ff_port}, not a flip-flop's DI"
        pairs.append((port, ff_name))
    if not pairs:
        return [], "no output is used"
    return pairs, None


def _common_control(module: dict, ff_names: list[str]) -> tuple[dict | None, str | None]:
    """The clock, enable and GSR setting the flip-flops share, or why they cannot be one
    MULT18X18D output register."""
    control = None
    for name in ff_names:
        ff = module["cells"][name]
        params = ff.get("parameters", {})
        for key, value in _PLAIN_FF.items():
            if params.get(key, value) != value:
                return None, f"flip-flop {name} has {key}={params[key]}"
        lsr = _single_bit(ff, "LSR")
        if lsr is not None and lsr not in _CONSTANT_ZERO:
            return None, f"flip-flop {name} has a local set/reset"
        # CEMUX "1" (Yosys's default for TRELLIS_FF): always enabled, CE ignored
        cemux = str(params.get("CEMUX", "1")).strip()
        ce = _single_bit(ff, "CE") if cemux == "CE" else "1"
        if cemux not in ("CE", "1"):
            return None, f"flip-flop {name} has CEMUX={cemux}"
        if ce is None or ce == "1":
            ce = "1"
        elif isinstance(ce, str):
            return None, f"flip-flop {name} has a constant enable {ce}"
        this = {"CLK": _single_bit(ff, "CLK"), "CE": ce, "GSR": params.get("GSR", "ENABLED")}
        if this["CLK"] is None or isinstance(this["CLK"], str):
            return None, f"flip-flop {name} has no clock"
        if control is None:
            control = this
        elif this != control:
            return None, "its flip-flops differ in clock, enable or GSR"
    return control, None


def absorb_output_registers(netlist: dict, top: str) -> Absorbed:
    """Give each MULT18X18D of module `top` (REG_OUTPUT_CLK NONE, every used output P<i>
    feeding only the DI of one TRELLIS_FF, all those flip-flops on one clock and one enable
    with no local set/reset) its output register in place of the flip-flops: REG_OUTPUT_CLK
    CLK0 with CLK0/CE0 on the flip-flops' clock/enable, RST0 tied low, GSR as the
    flip-flops' (their power-on value is 0, REGSET RESET, as the multiplier register's).
    Each P<i> then drives the flip-flop's Q net and the flip-flop is removed. Mutates
    `netlist`; returns what it did."""
    module = netlist["modules"][top]
    sinks, _ = _bit_users(module)
    multipliers = flip_flops = 0
    skipped = []
    for name in sorted(n for n, c in module["cells"].items() if c["type"] == "MULT18X18D"):
        cell = module["cells"][name]
        params = cell.setdefault("parameters", {})
        if params.get("REG_OUTPUT_CLK", "NONE") != "NONE":
            skipped.append((name, "already has an output register"))
            continue
        pairs, why = _register_of(name, module, sinks)
        if why:
            skipped.append((name, why))
            continue
        control, why = _common_control(module, [ff for _, ff in pairs])
        if why:
            skipped.append((name, why))
            continue
        for port, ff_name in pairs:
            cell["connections"][port] = list(module["cells"][ff_name]["connections"]["Q"])
            del module["cells"][ff_name]
        connections, directions = cell["connections"], cell["port_directions"]
        for port, bit in (("CLK0", control["CLK"]), ("CE0", control["CE"]), ("RST0", "0")):
            connections[port] = [bit]
            directions[port] = "input"
        params.update(
            REG_OUTPUT_CLK="CLK0",
            REG_OUTPUT_CE="CE0",
            REG_OUTPUT_RST="RST0",
            RESETMODE="SYNC",
            GSR=control["GSR"],
        )
        multipliers += 1
        flip_flops += len(pairs)
    return Absorbed(multipliers, flip_flops, tuple(skipped))


def rewrite_file(path: str | Path, top: str) -> Absorbed:
    """`absorb_output_registers` on the JSON netlist at `path`, written back in place."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    done = absorb_output_registers(netlist, top)
    path.write_text(json.dumps(netlist))
    return done


def main(argv: list[str] | None = None) -> None:
    """Rewrite NETLIST.json in place; the counts also go to NETLIST.dsp.json."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        raise SystemExit("usage: python -m rtlgen.boards.ecp5_dsp NETLIST.json [TOP]")
    top = args[1] if len(args) == 2 else "rtlgen_board"
    done = rewrite_file(args[0], top)
    summary = {
        "multipliers": done.multipliers,
        "flip_flops": done.flip_flops,
        "skipped": [list(item) for item in done.skipped],
    }
    Path(args[0]).with_suffix(".dsp.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"MULT18X18D output registers: {done.multipliers} multipliers took "
        f"{done.flip_flops} flip-flops; {len(done.skipped)} left combinational"
    )
    for name, why in done.skipped:
        print(f"  {name}: {why}")


if __name__ == "__main__":
    main()
