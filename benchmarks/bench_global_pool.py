"""Storage of global pooling: the whole-image pool built with a `WindowGenerator` (a line
buffer of H-1 image rows plus H x W window registers) against the streaming accumulators of
`rtlgen.layers.global_pool` (one register per channel and a short result pipeline).

Old design: numbers from the generator's geometry (`WindowGenerator.line_memory_bits`, and
kernel_h * kernel_w * channels * element width window registers); elaborating it takes
seconds per shape (a whole-image adder tree), so its reduction-tree pipeline registers, which
come on top, are not counted. New design: every flip-flop bit of the elaborated design,
counted from Amaranth's RTLIL output (accumulators, result pipeline, valid bits, position
counter); no yosys.

    python benchmarks/bench_global_pool.py   # writes benchmarks/results/global_pool.json
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import UnusedElaboratable

from rtlgen.layers.global_pool import GlobalAverage, GlobalMax
from rtlgen.layers.pool import AvgPool, MaxPool
from rtlgen.quant.fixed import FixedType

RESULTS = Path(__file__).parent / "results"
SHAPES = [(8, 8, 16), (16, 16, 32), (32, 32, 3)]
IN_TYPE = FixedType(8, 3)


def average_out_type(positions: int, in_type: FixedType) -> FixedType:
    """The wider type lowering gives an average pool (as in tests/layers/test_pool.py)."""
    extra = (0 if positions & (positions - 1) == 0 else 2) + math.ceil(math.log2(positions))
    return FixedType(in_type.width + extra, in_type.frac + extra, in_type.signed)


def flip_flop_bits(design) -> tuple[int, int]:
    """(flip-flop bits, memory bits) of an elaborated design, from its RTLIL."""
    text = rtlil.convert(design)
    flops = sum(
        int(width)
        for width in re.findall(r"cell \$(?:a|s|)dffe? \S+\n\s+parameter \\WIDTH (\d+)", text)
    )
    memory = sum(
        int(width) * int(words)
        for width, words in re.findall(
            r"cell \$meminit_v2 \S+\n(?:\s+parameter .*\n)*?\s+parameter \\WIDTH (\d+)\n"
            r"\s+parameter \\WORDS (\d+)",
            text,
        )
    )
    return flops, memory


def old_storage(pool: MaxPool | AvgPool) -> dict:
    window = pool.window
    window_register_bits = window.window_size * window.elem_shape.width
    return {
        "line_memory_bits": window.line_memory_bits,
        "window_register_bits": window_register_bits,
        "total_bits": window.line_memory_bits + window_register_bits,
        "latency": pool.latency,
        "cycles_per_sample": pool.cycles_per_sample,
    }


def new_storage(dut: GlobalMax | GlobalAverage) -> dict:
    flops, memory = flip_flop_bits(dut)
    assert memory == 0, "the streaming global pool has no memory"
    return {
        "memory_bits": memory,
        "accumulator_bits": dut.register_bits,
        "flip_flop_bits": flops,
        "latency": dut.latency,
        "cycles_per_sample": dut.cycles_per_sample,
    }


def main() -> dict:
    # The old pools are only measured from their geometry, never elaborated.
    warnings.simplefilter("ignore", UnusedElaboratable)
    start = time.perf_counter()
    rows = []
    for height, width, channels in SHAPES:
        positions = height * width
        whole = ((height, width), (height, width), (0, 0, 0, 0))
        avg_type = average_out_type(positions, IN_TYPE)
        for kind, old, new in [
            (
                "max",
                MaxPool(height, width, channels, *whole, IN_TYPE),
                GlobalMax(positions, channels, IN_TYPE),
            ),
            (
                "average",
                AvgPool(height, width, channels, *whole, IN_TYPE, avg_type),
                GlobalAverage(positions, channels, IN_TYPE, avg_type),
            ),
        ]:
            row = {
                "shape": [height, width, channels],
                "kind": kind,
                "in_type": str(IN_TYPE),
                "out_type": str(avg_type if kind == "average" else IN_TYPE),
                "old_window_generator": old_storage(old),
                "new_accumulators": new_storage(new),
            }
            row["storage_ratio"] = round(
                row["old_window_generator"]["total_bits"]
                / row["new_accumulators"]["flip_flop_bits"],
                1,
            )
            rows.append(row)
            print(
                f"{height}x{width}x{channels} {kind:7s}: old line memory "
                f"{row['old_window_generator']['line_memory_bits']:>7,} + window registers "
                f"{row['old_window_generator']['window_register_bits']:>7,} bits; new "
                f"{row['new_accumulators']['flip_flop_bits']:>5,} flip-flop bits "
                f"(accumulators {row['new_accumulators']['accumulator_bits']}), no memory"
            )
    result = {
        "benchmark": "global_pool",
        "what": "storage bits of global max/average pooling: whole-image WindowGenerator pool "
        "(line memory + window registers; its reduction-tree registers not counted) vs "
        "streaming per-channel accumulators (all flip-flops of the elaborated design)",
        "rows": rows,
        "seconds": round(time.perf_counter() - start, 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "global_pool.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['seconds']} s")
    return result


if __name__ == "__main__":
    main()
