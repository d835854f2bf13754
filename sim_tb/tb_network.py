"""The generic cocotb test of a generated network top (ports and files: docs/DESIGN.md).

Stand-alone: imports cocotb, numpy and its sibling modules only (copied into OUTDIR/tb/).
Configured through environment variables (set by `tb_run` / rtlgen's runner):

- `RTLGEN_MANIFEST`: path of manifest.json (required);
- `RTLGEN_X_INT`, `RTLGEN_Y_INT`: input mantissas and expected outputs (.npy, int);
  default `<manifest folder>/tb/x_int.npy` and `y_int.npy`;
- `RTLGEN_RESULTS_DIR`: where `sim_out.npy` and `sim_result.json` go; default: the x folder;
- `RTLGEN_BACKPRESSURE`: probability in [0, 1) of an idle input cycle and, independently, of
  a low `m_axis_tready` cycle; default 0 (full rate);
- `RTLGEN_SEED`: seed of the pause generators; default 0;
- `RTLGEN_TIMEOUT_CYCLES`: cycle budget; default derived from the manifest and N.

The test streams all samples back to back, checks every output element bit for bit, tlast
on the last beat of each sample, and tuser == arg-max of the sample's outputs (first max
wins) when the manifest's output has `classes`. It writes the result files first, then
fails with a one-line report naming the first problem.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

if __package__:
    from .tb_axis import AxisSink, AxisSource, CycleCounter, random_pauses
    from .tb_manifest import Manifest, check_vectors, describe_mismatch, load_manifest
else:  # copied next to run.py
    from tb_axis import AxisSink, AxisSource, CycleCounter, random_pauses
    from tb_manifest import Manifest, check_vectors, describe_mismatch, load_manifest

CLOCK_PERIOD_NS = 10
RESET_CYCLES = 4


def _env_path(name: str, default: Path | None) -> Path:
    value = os.environ.get(name)
    if value:
        return Path(value)
    if default is None:
        raise AssertionError(f"environment variable {name} is not set")
    return default


def timeout_cycles(manifest: Manifest, samples: int, backpressure: float) -> int:
    """A generous cycle budget for streaming `samples` samples: a design that has not
    delivered every output beat by then is taken as hung."""
    beats = max(manifest.input.beats_per_sample, manifest.output.beats_per_sample)
    ii = max(manifest.ii_cycles or 0, beats)
    latency = manifest.latency_cycles or 0
    full_rate = latency + ii * (samples + 1) + manifest.output.beats_per_sample
    return int(4 * full_rate / (1.0 - backpressure) ** 2) + 1000


def _unpack_outputs(manifest: Manifest, beats, samples: int) -> np.ndarray:
    spec = manifest.output
    values = np.zeros((samples, spec.beats_per_sample, spec.elements_per_beat), dtype=np.int64)
    for number, beat in enumerate(beats[: samples * spec.beats_per_sample]):
        sample, position = divmod(number, spec.beats_per_sample)
        values[sample, position] = spec.unpack(beat.data)
    return values.reshape(samples, *spec.shape)


def _first_mismatch(manifest: Manifest, expected: np.ndarray, actual: np.ndarray) -> dict:
    sample, *index = (int(i) for i in np.argwhere(expected != actual)[0])
    want, got = int(expected[(sample, *index)]), int(actual[(sample, *index)])
    return {
        "sample": sample,
        "index": index,
        "expected": want,
        "actual": got,
        "expected_raw": manifest.output.raw(want),
        "actual_raw": manifest.output.raw(got),
    }


async def _reset(dut, manifest: Manifest, clock) -> None:
    reset = getattr(dut, manifest.reset)
    active = 1 if manifest.reset_active_high else 0
    reset.value = active
    await ClockCycles(clock, RESET_CYCLES)
    reset.value = 1 - active


@cocotb.test()
async def stream_samples(dut) -> None:
    """Stream every sample of x_int through the design and compare with y_int bit for bit."""
    manifest = load_manifest(_env_path("RTLGEN_MANIFEST", None))
    x_path = _env_path("RTLGEN_X_INT", manifest.path.parent / "tb" / "x_int.npy")
    y_path = _env_path("RTLGEN_Y_INT", x_path.parent / "y_int.npy")
    results_dir = _env_path("RTLGEN_RESULTS_DIR", x_path.parent)
    backpressure = float(os.environ.get("RTLGEN_BACKPRESSURE", "0") or 0)
    seed = int(os.environ.get("RTLGEN_SEED", "0") or 0)
    x_int, y_int = np.load(x_path), np.load(y_path)
    check_vectors(manifest, x_int, y_int)
    samples = len(x_int)
    out_spec = manifest.output
    check_classes = out_spec.classes is not None
    if check_classes and not hasattr(dut, "m_axis_tuser"):
        raise AssertionError("manifest output has classes but the design has no m_axis_tuser")
    budget = int(os.environ.get("RTLGEN_TIMEOUT_CYCLES", "0") or 0) or timeout_cycles(
        manifest, samples, backpressure
    )

    clock = getattr(dut, manifest.clock)
    Clock(clock, CLOCK_PERIOD_NS, unit="ns").start()
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 0
    await _reset(dut, manifest, clock)
    await RisingEdge(clock)

    counter = CycleCounter(clock)
    source = AxisSource(dut, clock, counter, pauses=random_pauses(backpressure, f"{seed}/in"))
    sink = AxisSink(
        dut,
        clock,
        counter,
        pauses=random_pauses(backpressure, f"{seed}/out"),
        with_tuser=check_classes,
    )
    last_in = manifest.input.beats_per_sample - 1
    source.send(
        (word, position == last_in)
        for sample in x_int
        for position, word in enumerate(manifest.input.pack(sample))
    )
    expected_beats = samples * out_spec.beats_per_sample
    started = time.perf_counter()
    done = sink.expect(expected_beats)
    await First(done.wait(), Timer(budget * CLOCK_PERIOD_NS, unit="ns"))
    seconds = time.perf_counter() - started
    end_cycle = counter.cycle
    error = None
    if not done.is_set():
        error = (
            f"timeout after {budget} cycles: {len(sink.beats)} of {expected_beats} output "
            f"beats, {len(source.handshake_cycles)} of {samples * (last_in + 1)} input beats taken"
        )
    else:
        # Give a misbehaving design time to emit beats it should not.
        end_cycle = sink.beats[expected_beats - 1].cycle
        await ClockCycles(
            clock, (manifest.latency_cycles or 0) + 2 * out_spec.beats_per_sample + 16
        )
    source.stop()
    sink.stop()
    counter.stop()

    beats = sink.beats
    actual = _unpack_outputs(manifest, beats, samples)
    received_samples = min(samples, len(beats) // out_spec.beats_per_sample)
    expected = np.asarray(y_int, dtype=np.int64)
    compare = slice(0, received_samples)
    differs = expected[compare] != actual[compare]
    mismatched_samples = (
        int(differs.reshape(received_samples, -1).any(axis=1).sum()) if received_samples else 0
    )
    first_mismatch = (
        _first_mismatch(manifest, expected[compare], actual[compare]) if differs.any() else None
    )

    tlast_errors, first_tlast = 0, None
    for number, beat in enumerate(beats[:expected_beats]):
        should_be_last = number % out_spec.beats_per_sample == out_spec.beats_per_sample - 1
        if beat.last != should_be_last:
            tlast_errors += 1
            if first_tlast is None:
                first_tlast = (
                    f"m_axis_tlast is {int(beat.last)} on output beat {number} "
                    f"(sample {number // out_spec.beats_per_sample}), expected {int(should_be_last)}"
                )

    tuser_errors, first_tuser = 0, None
    if check_classes:
        for sample in range(received_samples):
            last_beat = beats[(sample + 1) * out_spec.beats_per_sample - 1]
            want = int(np.argmax(actual[sample].reshape(-1)))
            if last_beat.user != want:
                tuser_errors += 1
                if first_tuser is None:
                    first_tuser = (
                        f"m_axis_tuser is {last_beat.user} on sample {sample}, "
                        f"expected {want} (arg-max of its outputs)"
                    )

    extra_beats = max(0, len(beats) - expected_beats)
    firsts = [
        source.handshake_cycles[s * (last_in + 1)]
        for s in range(samples)
        if s * (last_in + 1) < len(source.handshake_cycles)
    ]
    lasts = [beats[(s + 1) * out_spec.beats_per_sample - 1].cycle for s in range(received_samples)]
    latencies = [last - first for first, last in zip(firsts, lasts, strict=False)]
    gaps = [b - a for a, b in zip(firsts, firsts[1:], strict=False)]
    # Streaming time: first input handshake to last output handshake (latency + (N-1) * II
    # at full rate).
    cycles = end_cycle - (firsts[0] if firsts else 0)

    problems = [
        error,
        f"{mismatched_samples} of {received_samples} samples differ; first: "
        f"{describe_mismatch(first_mismatch)}"
        if first_mismatch
        else None,
        first_tlast,
        first_tuser,
        f"{extra_beats} output beats more than the {expected_beats} expected"
        if extra_beats
        else None,
    ]
    problems = [p for p in problems if p]
    result = {
        "passed": not problems,
        "report": "; ".join(problems) if problems else f"{samples} samples bit-exact",
        "images": samples,
        "mismatches": mismatched_samples,
        "mismatched_elements": int(differs.sum()),
        "first_mismatch": first_mismatch,
        "tlast_errors": tlast_errors,
        "tuser_errors": tuser_errors,
        "extra_beats": extra_beats,
        "error": error,
        "latency_cycles": max(latencies) if latencies else None,
        "ii_cycles": max(gaps) if gaps else None,
        "timing_under_backpressure": backpressure > 0,
        "manifest_latency_cycles": manifest.latency_cycles,
        "manifest_ii_cycles": manifest.ii_cycles,
        "input_stalled": source.stalled_cycles > 0,
        "cycles": cycles,
        "seconds": seconds,
        "cycles_per_second": cycles / seconds if seconds > 0 else None,
        "backpressure": backpressure,
        "seed": seed,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    np.save(results_dir / "sim_out.npy", actual)
    (results_dir / "sim_result.json").write_text(json.dumps(result, indent=2) + "\n")
    assert not problems, result["report"]
