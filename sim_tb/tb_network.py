"""The generic cocotb test of a generated network top (ports and files: docs/DESIGN.md).

Stand-alone: imports cocotb, numpy and its sibling modules only (copied into OUTDIR/tb/).
Configured through environment variables (set by `tb_run` / rtlgen's runner):

- `RTLGEN_MANIFEST`: path of manifest.json (required);
- `RTLGEN_X_INT`, `RTLGEN_Y_INT`: input mantissas and expected outputs (.npy, int; a design
  with several inputs or outputs: an .npz with one array per input or output name); default
  `<manifest folder>/tb/x_int.npy` (`x_int.npz`) and `y_int.npy` (`y_int.npz`);
- `RTLGEN_RESULTS_DIR`: where `sim_out.npy` and `sim_result.json` go; default: the x folder;
- `RTLGEN_BACKPRESSURE`: probability in [0, 1) of an idle cycle on each input slave and,
  independently, of a low `tready` cycle on each output master (one pattern per port);
  default 0 (full rate);
- `RTLGEN_SEED`: seed of the pause generators; default 0;
- `RTLGEN_TIMEOUT_CYCLES`: cycle budget; default derived from the manifest and N.

The test streams all samples back to back, checks every element of every output bit for
bit, tlast on the last beat of each sample of each output, and tuser == arg-max of the
sample's outputs (first max wins) on each output with `classes`, and measures the latency of
each output. It writes the result files first (`sim_out.npy`, or `sim_out.npz` with one
array per output name; `sim_result.json` with a summary per output in `outputs`), then fails
with a one-line report naming the first problem.
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
    from .tb_manifest import (
        Manifest,
        StreamSpec,
        check_vectors,
        input_arrays,
        load_manifest,
        output_arrays,
        output_check,
        sim_result,
    )
else:  # copied next to run.py
    from tb_axis import AxisSink, AxisSource, CycleCounter, random_pauses
    from tb_manifest import (
        Manifest,
        StreamSpec,
        check_vectors,
        input_arrays,
        load_manifest,
        output_arrays,
        output_check,
        sim_result,
    )

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
    out_beats = max(out.beats_per_sample for out in manifest.outputs)
    beats = max(*(spec.beats_per_sample for spec in manifest.inputs), out_beats)
    ii = max(manifest.ii_cycles or 0, *(out.ii_cycles or 0 for out in manifest.outputs), beats)
    latency = max(
        manifest.latency_cycles or 0, *(out.latency_cycles or 0 for out in manifest.outputs)
    )
    full_rate = latency + ii * (samples + 1) + out_beats
    return int(4 * full_rate / (1.0 - backpressure) ** 2) + 1000


def load_expected(manifest: Manifest, path: Path) -> dict[str, np.ndarray]:
    """The expected outputs {name: mantissas}: a .npy for a one-output design, else an .npz
    with one array per output name (no pickles either way)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return output_arrays(manifest, {key: arrays[key] for key in arrays.files})
    return output_arrays(manifest, np.load(path, allow_pickle=False))


def load_inputs(manifest: Manifest, path: Path) -> dict[str, np.ndarray]:
    """The input mantissas {name: array}: a .npy for a one-input design, else an .npz with
    one array per input name (no pickles either way)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return input_arrays(manifest, {key: arrays[key] for key in arrays.files})
    return input_arrays(manifest, np.load(path, allow_pickle=False))


def _unpack_outputs(spec: StreamSpec, beats, samples: int) -> np.ndarray:
    values = np.zeros((samples, spec.beats_per_sample, spec.elements_per_beat), dtype=np.int64)
    for number, beat in enumerate(beats[: samples * spec.beats_per_sample]):
        sample, position = divmod(number, spec.beats_per_sample)
        values[sample, position] = spec.unpack(beat.data)
    return values.reshape(samples, *spec.shape)


async def _reset(dut, manifest: Manifest, clock) -> None:
    reset = getattr(dut, manifest.reset)
    active = 1 if manifest.reset_active_high else 0
    reset.value = active
    await ClockCycles(clock, RESET_CYCLES)
    reset.value = 1 - active


def _check_output(
    spec: StreamSpec, beats, expected: np.ndarray, samples: int, firsts: list[int], several: bool
) -> dict:
    """One output's comparison (`output_check`): values bit for bit, tlast per beat, tuser =
    arg-max, extra beats, and the latency (sample start to the sample's last beat here)."""
    per_sample = spec.beats_per_sample
    actual = _unpack_outputs(spec, beats, samples)
    received = min(samples, len(beats) // per_sample)
    expected_beats = samples * per_sample
    tlast_errors, first_tlast = 0, None
    for number, beat in enumerate(beats[:expected_beats]):
        should_be_last = number % per_sample == per_sample - 1
        if beat.last != should_be_last:
            tlast_errors += 1
            if first_tlast is None:
                first_tlast = (
                    f"{spec.prefix}_tlast is {int(beat.last)} on output beat {number} "
                    f"(sample {number // per_sample}), expected {int(should_be_last)}"
                )
    tuser_errors, first_tuser = 0, None
    if spec.classes is not None:
        for sample in range(received):
            last_beat = beats[(sample + 1) * per_sample - 1]
            want = int(np.argmax(actual[sample].reshape(-1)))
            if last_beat.user != want:
                tuser_errors += 1
                if first_tuser is None:
                    first_tuser = (
                        f"{spec.prefix}_tuser is {last_beat.user} on sample {sample}, "
                        f"expected {want} (arg-max of its outputs)"
                    )
    lasts = [beats[(s + 1) * per_sample - 1].cycle for s in range(received)]
    latencies = [last - first for first, last in zip(firsts, lasts, strict=False)]
    check = output_check(
        spec,
        expected,
        actual,
        received=received,
        expected_beats=expected_beats,
        first_tlast=first_tlast,
        tlast_errors=tlast_errors,
        first_tuser=first_tuser,
        tuser_errors=tuser_errors,
        extra=max(0, len(beats) - expected_beats),
        latency=max(latencies) if latencies else None,
        several=several,
    )
    return {**check, "prefix": spec.prefix, "lasts": lasts}


@cocotb.test()
async def stream_samples(dut) -> None:
    """Stream every sample of x_int through the design and compare every output with
    y_int bit for bit."""
    manifest = load_manifest(_env_path("RTLGEN_MANIFEST", None))
    several = len(manifest.outputs) > 1
    default_y = "y_int.npz" if several else "y_int.npy"
    default_x = "x_int.npz" if len(manifest.inputs) > 1 else "x_int.npy"
    x_path = _env_path("RTLGEN_X_INT", manifest.path.parent / "tb" / default_x)
    y_path = _env_path("RTLGEN_Y_INT", x_path.parent / default_y)
    results_dir = _env_path("RTLGEN_RESULTS_DIR", x_path.parent)
    backpressure = float(os.environ.get("RTLGEN_BACKPRESSURE", "0") or 0)
    seed = int(os.environ.get("RTLGEN_SEED", "0") or 0)
    x_ints = load_inputs(manifest, x_path)
    y_int = load_expected(manifest, y_path)
    check_vectors(manifest, x_ints, y_int)
    samples = len(next(iter(x_ints.values())))
    for spec in manifest.outputs:
        if spec.classes is not None and not hasattr(dut, f"{spec.prefix}_tuser"):
            raise AssertionError(
                f"manifest output {spec.name} has classes but the design has no {spec.prefix}_tuser"
            )
    budget = int(os.environ.get("RTLGEN_TIMEOUT_CYCLES", "0") or 0) or timeout_cycles(
        manifest, samples, backpressure
    )

    clock = getattr(dut, manifest.clock)
    Clock(clock, CLOCK_PERIOD_NS, unit="ns").start()
    for spec in manifest.inputs:
        getattr(dut, f"{spec.prefix}_tvalid").value = 0
    for spec in manifest.outputs:
        getattr(dut, f"{spec.prefix}_tready").value = 0
    await _reset(dut, manifest, clock)
    await RisingEdge(clock)

    counter = CycleCounter(clock)
    # each slave its own, independent gaps (input 0 keeps the one-input seed)
    sources = [
        AxisSource(
            dut,
            clock,
            counter,
            prefix=spec.prefix,
            pauses=random_pauses(backpressure, f"{seed}/in" + (f"{k}" if k else "")),
        )
        for k, spec in enumerate(manifest.inputs)
    ]
    # each master its own, independent tready pattern (output 0 keeps the one-output seed)
    sinks = [
        AxisSink(
            dut,
            clock,
            counter,
            prefix=spec.prefix,
            pauses=random_pauses(backpressure, f"{seed}/out" + (f"{k}" if k else "")),
            with_tuser=spec.classes is not None,
        )
        for k, spec in enumerate(manifest.outputs)
    ]
    for spec, feeder in zip(manifest.inputs, sources, strict=True):
        last = spec.beats_per_sample - 1
        feeder.send(
            (word, position == last)
            for sample in x_ints[spec.name]
            for position, word in enumerate(spec.pack(sample))
        )
    wanted = [samples * spec.beats_per_sample for spec in manifest.outputs]
    started = time.perf_counter()
    events = [sink.expect(count) for sink, count in zip(sinks, wanted, strict=True)]
    for event in events:  # one budget for all: the cycles left when each wait starts
        remaining = budget - counter.cycle
        if not event.is_set() and remaining > 0:
            await First(event.wait(), Timer(remaining * CLOCK_PERIOD_NS, unit="ns"))
    seconds = time.perf_counter() - started
    end_cycle = counter.cycle
    error = None
    pending = [
        f"{len(sink.beats)} of {count} output beats" + (f" on {spec.prefix}" if several else "")
        for sink, count, spec in zip(sinks, wanted, manifest.outputs, strict=True)
        if len(sink.beats) < count
    ]
    if pending:
        error = (
            f"timeout after {budget} cycles: {', '.join(pending)}, "
            + ", ".join(
                f"{len(feeder.handshake_cycles)} of {samples * spec.beats_per_sample} input beats"
                + (f" on {spec.prefix}" if len(sources) > 1 else "")
                for spec, feeder in zip(manifest.inputs, sources, strict=True)
            )
            + " taken"
        )
    else:
        # Give a misbehaving design time to emit beats it should not.
        end_cycle = max(
            sink.beats[count - 1].cycle for sink, count in zip(sinks, wanted, strict=True)
        )
        settle = max(
            (spec.latency_cycles or manifest.latency_cycles or 0) + 2 * spec.beats_per_sample
            for spec in manifest.outputs
        )
        await ClockCycles(clock, settle + 16)
    for feeder in sources:
        feeder.stop()
    for sink in sinks:
        sink.stop()
    counter.stop()

    # a sample starts when the last of the inputs takes its first beat (one input: its first
    # beat), as the manifest's latency and II count
    firsts = []
    for s in range(samples):
        starts = [
            feeder.handshake_cycles[s * spec.beats_per_sample]
            for spec, feeder in zip(manifest.inputs, sources, strict=True)
            if s * spec.beats_per_sample < len(feeder.handshake_cycles)
        ]
        if len(starts) < len(sources):
            break
        firsts.append(max(starts))
    checks = [
        _check_output(
            spec, sink.beats, np.asarray(y_int[spec.name], dtype=np.int64), samples, firsts, several
        )
        for spec, sink in zip(manifest.outputs, sinks, strict=True)
    ]
    result = sim_result(
        manifest,
        checks,
        samples=samples,
        error=error,
        firsts=firsts,
        end_cycle=end_cycle,
        seconds=seconds,
        input_stalled=any(feeder.stalled_cycles > 0 for feeder in sources),
        backpressure=backpressure,
        seed=seed,
        results_dir=results_dir,
    )
    (results_dir / "sim_result.json").write_text(json.dumps(result, indent=2) + "\n")
    assert result["passed"], result["report"]
