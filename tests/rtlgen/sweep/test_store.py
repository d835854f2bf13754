"""The store: what changes a step's digest and what must not; results written last, atomically."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from rtlgen.quant.errors import RtlgenError
from rtlgen.sweep import store as store_module
from rtlgen.sweep.engine import input_files, plan_sweep
from rtlgen.sweep.spec import SimOptions, Step, load_spec
from rtlgen.sweep.steps import (
    ConvertParams,
    ModelSource,
    SimParams,
    StepOutcome,
    StepTask,
    run_step,
)
from rtlgen.sweep.store import RESULT_NAME, Store, file_digest, step_digest


def convert_params(tiny: Path, **options) -> ConvertParams:
    return ConvertParams(ModelSource(tiny / "model.json", tiny / "model_weights.h5"), **options)


def digest_of(tiny: Path, params, upstream=None, step="convert") -> str:
    files = {p: file_digest(p) for p in (tiny / "model.json", tiny / "model_weights.h5")}
    return step_digest(step, params, upstream, files)


def test_equal_steps_have_equal_digests_wherever_the_files_live(tiny, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny, moved)
    assert digest_of(tiny, convert_params(tiny)) == digest_of(moved, convert_params(moved))


@pytest.mark.parametrize(
    "change",
    [
        {"multiplier": "lut"},
        {"parallelism": "full"},
        {"pipeline": "latency"},
        {"adders_per_stage": 3},
    ],
)
def test_each_option_the_step_reads_changes_its_digest(tiny, change):
    assert digest_of(tiny, convert_params(tiny)) != digest_of(tiny, convert_params(tiny, **change))


def train_digests(tmp_path: Path, model: str, sparsity: str = "0") -> list[str]:
    """The train steps' digests of a built-in model spec (``model``: its mapping's YAML)."""
    path = tmp_path / "train.yml"
    path.write_text(f"model: {model}\naxes: {{sparsity: [{sparsity}]}}\n")
    plan = plan_sweep(load_spec(path), tmp_path / "store", "run", {})
    return [t.digest for t in plan.tasks.values() if t.step is Step.TRAIN]


@pytest.mark.parametrize(
    "base,changed",
    [
        ("learning_rate: 0.003", "learning_rate: 0.001"),
        ("batch_size: 128", "batch_size: 64"),
        ("epochs: 8", "epochs: 9"),
        ("prune_epochs: 3", "prune_epochs: 2"),
        ("train_samples: 8000", "train_samples: 4000"),
        ("prune_frequency: 10", "prune_frequency: 20"),
        ("seed: 0", "seed: 1"),
    ],
)
def test_each_training_setting_changes_the_train_digest(tmp_path, base, changed):
    """A different learning rate (batch size, ...) never reuses a trained model; spelling out
    the default shares the training of a spec that leaves it out. (A pruned variant and the
    unpruned sibling it is fine-tuned from.)"""
    default = train_digests(tmp_path, "{builtin: svhn_cnn}", "0.5")
    assert len(default) == 2
    assert train_digests(tmp_path, f"{{builtin: svhn_cnn, {base}}}", "0.5") == default
    assert train_digests(tmp_path, f"{{builtin: svhn_cnn, {changed}}}", "0.5")[1] != default[1]


def test_prune_frequency_changes_the_pruned_variants_train_digest(tmp_path):
    default = train_digests(tmp_path, "{builtin: jet_mlp}", "0.5")
    assert train_digests(tmp_path, "{builtin: jet_mlp, prune_frequency: 10}", "0.5") == default
    assert train_digests(tmp_path, "{builtin: jet_mlp, prune_frequency: 20}", "0.5") != default
    assert train_digests(tmp_path, "{builtin: jet_mlp, learning_rate: 3e-3}", "0.5") == default
    assert train_digests(tmp_path, "{builtin: jet_mlp, learning_rate: 2e-3}", "0.5") != default


def test_model_content_changes_the_digest(tiny):
    before = digest_of(tiny, convert_params(tiny))
    with (tiny / "model_weights.h5").open("ab") as handle:
        handle.write(b"\0")
    assert digest_of(tiny, convert_params(tiny)) != before


def test_upstream_step_name_rtlgen_and_tool_versions_change_the_digest(tiny, monkeypatch):
    params = convert_params(tiny)
    base = digest_of(tiny, params)
    assert digest_of(tiny, params, upstream="abc") != base
    assert digest_of(tiny, params, step="predict") != base
    monkeypatch.setattr(store_module, "__version__", "99.0")
    assert digest_of(tiny, params) != base
    monkeypatch.undo()
    monkeypatch.setattr(
        store_module, "tool_version", lambda name: "amaranth-next" if name == "amaranth" else "x"
    )
    assert digest_of(tiny, params) != base


def plan(tiny: Path, body: str):
    path = tiny / "plan.yml"
    path.write_text("model: model.json\nweights: model_weights.h5\ninput: x.npy\n" + body)
    spec = load_spec(path)
    result = plan_sweep(spec, tiny / "store", "run", input_files(spec))
    return {
        (point.point.label(), str(step)): digest
        for point in result.points
        for step, digest in point.steps
    }, result


def test_convert_does_not_depend_on_sim_options_nor_predict_on_hardware_axes(tiny):
    steps = "steps: [convert, predict, sim, synth]\n"
    a, _ = plan(tiny, steps + "axes: {multiplier: [dsp, lut]}\nsim: {samples: 4}\n")
    b, _ = plan(tiny, steps + "axes: {multiplier: [dsp, lut]}\nsim: {samples: 8}\n")
    dsp, lut = "multiplier=dsp", "multiplier=lut"
    assert a[dsp, "convert"] == b[dsp, "convert"] and a[dsp, "synth"] == b[dsp, "synth"]
    assert a[dsp, "sim"] != b[dsp, "sim"]
    assert a[dsp, "predict"] == a[lut, "predict"]  # one predict task serves both styles
    assert a[dsp, "convert"] != a[lut, "convert"] and a[dsp, "sim"] != a[lut, "sim"]


def test_input_type_axis_changes_predict_and_convert(tiny):
    digests, result = plan(
        tiny, "steps: [convert, predict]\naxes: {input_type: ['fixed<8,2>', 'fixed<12,4>']}\n"
    )
    a, b = "input_type=fixed<8,2>", "input_type=fixed<12,4>"
    assert (
        digests[a, "predict"] != digests[b, "predict"]
        and digests[a, "convert"] != digests[b, "convert"]
    )
    assert len(result.tasks) == 4


def test_shared_steps_become_one_task(tiny):
    _, result = plan(
        tiny,
        "steps: [convert, predict]\naxes: {multiplier: [dsp, lut], parallelism: [auto, full]}\n",
    )
    steps = [task.step for task in result.tasks.values()]
    assert steps.count(Step.CONVERT) == 4 and steps.count(Step.PREDICT) == 1


# ---------------------------------------------------------------------------------------
def finished_entry(store: Store, step: str, digest: str) -> Path:
    work = store.workspace(step, digest, "run")
    return store.publish(work, step, digest, {"step": step, "digest": digest, "figures": {"x": 1}})


def test_published_entry_holds_its_result_and_no_workspace_remains(tmp_path):
    store = Store(tmp_path / "store")
    entry = finished_entry(store, "convert", "d1")
    assert entry == tmp_path / "store" / "convert" / "d1"
    assert store.result("convert", "d1")["figures"] == {"x": 1}
    assert sorted(p.name for p in (tmp_path / "store" / "convert").iterdir()) == ["d1"]


def test_a_second_publish_of_the_same_digest_keeps_the_first(tmp_path):
    store = Store(tmp_path / "store")
    finished_entry(store, "convert", "d1")
    work = store.workspace("convert", "d1", "run")
    store.publish(work, "convert", "d1", {"step": "convert", "digest": "d1", "figures": {"x": 2}})
    assert store.result("convert", "d1")["figures"] == {"x": 1}
    assert not work.exists()


@pytest.mark.parametrize(
    "damage", ["missing", "truncated", "wrong digest", "not a mapping", "oversized", "symlink"]
)
def test_an_entry_without_a_valid_result_is_not_finished(tmp_path, damage):
    store = Store(tmp_path / "store")
    entry = store.entry("convert", "d1")
    entry.mkdir(parents=True)
    result = entry / RESULT_NAME
    good = json.dumps({"step": "convert", "digest": "d1", "figures": {}})
    if damage == "truncated":
        result.write_text(good[:10])
    elif damage == "wrong digest":
        result.write_text(good.replace("d1", "d2"))
    elif damage == "not a mapping":
        result.write_text("[1, 2]")
    elif damage == "oversized":
        result.write_text(good + " " * store_module.MAX_RESULT_BYTES)
    elif damage == "symlink":
        (tmp_path / "elsewhere.json").write_text(good)
        os.symlink(tmp_path / "elsewhere.json", result)
    assert store.result("convert", "d1") is None


# ---------------------------------------------------------------------------------------
def failing_step(params, work, upstream):
    (work / "half-written").write_text("x")
    raise RtlgenError("layer d1: something\nunsupported")


def crashing_step(params, work, upstream):
    (work / "half-written").write_text("x")
    raise ZeroDivisionError("bug")


def counting_step(params, work, upstream):
    (work / "artifact").write_text("done")
    return {"value": 42}


def task(tmp_path: Path, function, step=Step.CONVERT, digest="d1", upstream=None) -> StepTask:
    return StepTask(step, digest, None, function, tmp_path / "store", "run", upstream)


def test_user_error_in_a_step_is_a_one_line_failure_and_stores_nothing(tmp_path):
    outcome = run_step(task(tmp_path, failing_step))
    assert outcome.status == "failed" and outcome.reason == "layer d1: something unsupported"
    assert list((tmp_path / "store" / "convert").iterdir()) == []


def test_a_bug_in_a_step_propagates_and_leaves_no_workspace(tmp_path):
    with pytest.raises(ZeroDivisionError):
        run_step(task(tmp_path, crashing_step))
    assert list((tmp_path / "store" / "convert").iterdir()) == []


def test_a_stored_step_is_reused_without_running(tmp_path):
    first = run_step(task(tmp_path, counting_step))
    again = run_step(task(tmp_path, crashing_step))  # would raise if it ran
    assert first.figures == again.figures == {"value": 42}
    assert not first.cached and again.cached


@pytest.mark.parametrize("status", ["failed", "skipped"])
def test_a_step_after_a_failed_upstream_is_skipped(tmp_path, status):
    upstream = StepOutcome(Step.CONVERT, "u1", status, reason="no")
    outcome = run_step(task(tmp_path, crashing_step, Step.SIM, "s1", "u1"), upstream)
    assert outcome.status == "skipped" and outcome.reason.startswith("convert")


def test_sim_params_hash_every_sim_option(tiny):
    files = {tiny / "x.npy": file_digest(tiny / "x.npy")}
    base = SimParams(SimOptions(), tiny / "x.npy")
    digests = {
        step_digest("sim", dataclasses.replace(base, options=options), "up", files)
        for options in (
            SimOptions(),
            SimOptions(samples=3),
            SimOptions(backpressure=0.2),
            SimOptions(seed=1),
        )
    }
    assert len(digests) == 4


def test_a_step_folder_planted_as_a_symlink_is_refused_and_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "store").mkdir()
    os.symlink(victim, tmp_path / "store" / "convert")
    outcome = run_step(task(tmp_path, counting_step))
    assert outcome.status == "failed" and "not a folder rtlgen wrote" in outcome.reason
    assert list(victim.iterdir()) == []
    assert Store(tmp_path / "store").result("convert", "d1") is None


@pytest.mark.parametrize("planted", ["entry", "design"])
def test_a_design_folder_planted_as_a_symlink_is_not_read(tmp_path, planted):
    from rtlgen.sweep.steps import SynthParams, copy_design, synth_step

    outside = tmp_path / "outside"
    (outside / "design").mkdir(parents=True)
    (outside / "design" / "secret").write_text("x")
    entry = tmp_path / "store" / "convert" / "d1"
    if planted == "entry":
        entry.parent.mkdir(parents=True)
        os.symlink(outside, entry)
    else:
        entry.mkdir(parents=True)
        os.symlink(outside / "design", entry / "design")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(RtlgenError, match="not the design folder"):
        copy_design(entry, work)
    with pytest.raises(RtlgenError, match="not the design folder"):
        synth_step(SynthParams(), work, entry)
    assert list(work.iterdir()) == []


def test_an_upstream_entry_planted_as_a_symlink_fails_the_step_without_running_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "store" / "convert").mkdir(parents=True)
    os.symlink(outside, tmp_path / "store" / "convert" / "u1")
    sim = dataclasses.replace(
        task(tmp_path, crashing_step, Step.SIM, "s1", "u1"), upstream_step=Step.CONVERT
    )
    outcome = run_step(sim, StepOutcome(Step.CONVERT, "u1", "ok"))
    assert outcome.status == "failed" and "not the store entry" in outcome.reason
