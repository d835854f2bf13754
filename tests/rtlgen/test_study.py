"""The SVHN study machinery (rtlgen/study.py): configurations, published numbers, the results
table and plots, and (slow) a tiny end-to-end run: train -> convert -> Verilator -> peers."""

from __future__ import annotations

import json
from importlib.util import find_spec

import pytest

from rtlgen import study
from rtlgen.quant.errors import RtlgenError
from rtlgen.study import StudyConfig, Variant

PLOTS = ("accuracy_vs_dsp.png", "accuracy_vs_lut.png", "latency.png")


def _design(latency: int, multipliers: int, synth: dict | None = None, sim_ok: bool = True) -> dict:
    sim = (
        {
            "status": "ok",
            "images": 4,
            "passed": True,
            "exact_match_rate": 1.0,
            "rtl_accuracy": 0.75,
            "latency_cycles": latency,
            "ii_cycles": 1024,
            "build_and_sim_seconds": 12.0,
            "y_sim_argmax": [1, 2, 3, 4],
        }
        if sim_ok
        else {"status": "n/a: simulation of this style not in this run"}
    )
    return {
        "latency_cycles_manifest": latency,
        "ii_cycles_manifest": 1024,
        "multipliers": multipliers,
        "multipliers_dense": 13714,
        "adders": 2000,
        "generation_seconds": 20.0,
        "sim": sim,
        "synth": synth or {"status": "n/a: not in --quick"},
    }


def _variant(v: Variant, designs: dict, hls4ml: dict, alkaid: dict) -> dict:
    return {
        "key": v.key,
        "short": v.short,
        "label": v.label,
        "bits": v.bits,
        "sparsity_target": v.sparsity,
        "bn_before_pool": v.bn_before_pool,
        "layer_order": v.order,
        "paper_row": v.paper_row,
        "training": {"seconds": 30.0, "cached": False, "epochs": 8},
        "keras_accuracy": 0.80,
        "reference_accuracy": 0.79,
        "keras_reference_argmax_agreement": 0.99,
        "designs": designs,
        "peers": {"hls4ml": hls4ml, "alkaid": alkaid},
    }


def _fake_results() -> dict:
    """Results as `run_study` writes them: one synthesized variant with working peers, one
    unsynthesized with a peer that could not run."""
    synth = {
        "status": "ok",
        "luts": 56531,
        "ffs": 74856,
        "dsps": 1280,
        "brams": 0,
        "longest_path": 40,
        "lut_levels": 9,
        "seconds": 900.0,
    }
    hls_ok = {
        "status": "ok",
        "exact_logits_rate": 1.0,
        "argmax_agreement_reference": 1.0,
        "argmax_agreement_rtl": 1.0,
        "accuracy": 0.79,
        "compile_seconds": 60.0,
        "images": 200,
    }
    da_ok = {
        "status": "ok",
        "exact_logits_rate": 0.99,
        "latency_cycles": 4,
        "synth": {"status": "ok", "luts": 2800, "ffs": 800, "dsps": 0},
        "rtlgen_dense": {
            "latency_cycles_manifest": 15,
            "synth": {"status": "ok", "luts": 3200, "ffs": 2000, "dsps": 0},
        },
        "whole_model": "n/a: alkaid traces a convolution fully unrolled",
    }
    q6, qp6 = Variant(6), Variant(6, 0.5, paper_row="tutorial_QP6")
    results = {
        "config": "quick",
        "data": {
            "source": "synthetic_svhn",
            "note": "SYNTHETIC stand-in",
            "train_images": 8000,
            "test_images": 1000,
            "sim_images": 4,
            "peer_images": 200,
        },
        "machine": {"cpus": 2},
        "paper": study.paper_reference(),
        "synthesis_command": study.SYNTH_COMMAND,
        "timings": {"total_seconds": 800.0},
        "variants": [
            _variant(
                q6,
                {
                    "dsp": _design(1359, 4000, synth),
                    "lut": _design(1357, 4000, {**synth, "dsps": 0}),
                },
                hls_ok,
                da_ok,
            ),
            _variant(
                qp6,
                {"dsp": _design(1359, 2451), "lut": _design(1357, 2451, sim_ok=False)},
                {"status": "n/a: hls4ml not installed (pip install 'rtlgen[peers]')"},
                da_ok,
            ),
        ],
    }
    results["summary"] = study.summarize(results)
    return results


def test_published_numbers_carry_their_source():
    paper = study.paper_reference()
    assert paper["tutorial_QP6"]["dsp"] == 353
    assert paper["tutorial_BP"]["lut"] == 123948
    assert (
        paper["tutorial_QP6"]["latency_cycles"] == 1044
        and paper["tutorial_QP6"]["ii_cycles"] == 1028
    )
    assert paper["paper"]["dsp_reduction_no_accuracy_loss"] == pytest.approx(0.97)
    for row in paper.values():
        for metric in row["sources"]:
            assert row["sources"][metric], metric


def test_variant_keys_are_unique_and_named_like_the_paper():
    variants = study.full_config().variants
    assert len({v.key for v in variants}) == len(variants)
    assert {v.short for v in variants} >= {"BF", "BP", "Q16", "Q8", "Q6", "Q4", "Q3", "QP6", "QP3"}
    assert {v.bn_before_pool for v in variants} == {True, False}


def test_quick_config_is_two_6bit_variants_in_both_multiplier_styles():
    quick = study.quick_config()
    assert [v.short for v in quick.variants] == ["Q6", "QP6"]
    # both multiplier styles, plus the paper's reuse factor 1 (fully parallel) for latency
    assert set(quick.multipliers) == {"dsp", "lut", "dsp-full"}
    assert not quick.synthesize and "quick" in quick.synth_note
    assert quick.hls4ml and quick.alkaid


@pytest.mark.parametrize("name", ["quick", "full"])
def test_study_spec_is_the_benchmark_spec_file(name):
    """`rtlgen bench svhn` runs the spec benchmarks/sweeps/svhn_<name>.yml documents."""
    from pathlib import Path

    from rtlgen.sweep.spec import load_spec, spec_from_dict

    config = {"quick": study.quick_config, "full": study.full_config}[name]()
    path = Path(__file__).parents[2] / "benchmarks" / "sweeps" / f"svhn_{name}.yml"
    written = load_spec(path)
    made = spec_from_dict(study.study_spec(config), path)
    assert written == made
    assert sorted(study.spec_text(config).splitlines()[2:]) == sorted(
        line for line in path.read_text().splitlines() if not line.startswith("#")
    )


def test_full_study_spec_has_every_variant_and_style_once():
    from pathlib import Path

    from rtlgen.sweep.builtin import svhn_variant, train_params
    from rtlgen.sweep.spec import spec_from_dict

    config = study.full_config()
    spec = spec_from_dict(study.study_spec(config), Path("full.yml"))
    points = spec.points()
    assert len(points) == len(config.variants) * len(config.multipliers) == 48
    variants = {svhn_variant(train_params(spec.model, p)).key for p in points}
    assert variants == {v.key for v in config.variants}
    styles = {study.style_name(p.get("multiplier"), p.get("parallelism")) for p in points}
    assert styles == set(config.multipliers)
    assert [str(s) for s in spec.steps][-3:] == ["synth", "hls4ml", "alkaid"]
    assert spec.model.epochs == 20 and spec.model.train_samples == 30000


def test_study_spec_carries_the_training_settings_to_the_sweep():
    """A study with its own batch size, learning rate and pruning frequency is a sweep spec
    whose svhn_cnn trains exactly as the study would (the same training fingerprint)."""
    import dataclasses
    from pathlib import Path

    from rtlgen.sweep.builtin import svhn_config, svhn_variant, train_params
    from rtlgen.sweep.spec import spec_from_dict

    config = dataclasses.replace(
        study.quick_config(), batch_size=32, learning_rate=1e-3, prune_frequency=5, epochs=2
    )
    spec = spec_from_dict(study.study_spec(config), Path("study.yml"))
    for point in spec.points():
        params = train_params(spec.model, point)
        variant = svhn_variant(params)
        trained = svhn_config(params.model).training_fingerprint(variant)
        assert trained == config.training_fingerprint(variant)


def test_float_precision_config_round_trips_through_its_yaml():
    """The float baseline's post-training quantization travels from the train step to
    convert as precision.yml: the same PrecisionConfig comes back."""

    from rtlgen.config import config_from_dict
    from rtlgen.passes import LayerPrecision, PrecisionConfig

    fixed = LayerPrecision(study.PAPER_FIXED, study.PAPER_FIXED, study.PAPER_FIXED)
    config = PrecisionConfig(input=study.INPUT_TYPE, layers=(("conv", fixed), ("bn", fixed)))
    import yaml

    assert config_from_dict(yaml.safe_load(study.precision_yaml(config))) == config
    qkeras = PrecisionConfig(input=study.INPUT_TYPE)
    assert config_from_dict(yaml.safe_load(study.precision_yaml(qkeras))) == qkeras


def test_peer_steps_without_the_peer_installed_are_skipped_rows(tmp_path, monkeypatch):
    """hls4ml and alkaid are extras: a missing one is a "skipped: not installed" figure (the
    step succeeds, the point stays ok), never a crash."""
    monkeypatch.setattr(study, "find_spec", lambda name: None)
    assert study.hls4ml_peer(tmp_path, tmp_path, 10) == {"hls4ml_status": study.NOT_INSTALLED}
    assert study.alkaid_peer(tmp_path, tmp_path, 10, None) == {"alkaid_status": study.NOT_INSTALLED}
    assert json.loads((tmp_path / study.PEER_FILE).read_text())["status"] == study.NOT_INSTALLED


def test_design_styles_map_to_hardware_options():
    from rtlgen.hardware import Multiplier, Parallelism

    assert study.style_options("lut").multiplier is Multiplier.LUT
    assert study.style_options("lut").parallelism is Parallelism.AUTO
    full = study.style_options("dsp-full")
    assert (full.multiplier, full.parallelism) == (Multiplier.DSP, Parallelism.FULL)
    assert study.style_options("auto").multiplier is Multiplier.AUTO
    with pytest.raises(RtlgenError, match="design style 'fast'"):
        study.style_options("fast")


def test_summary_reports_latency_per_style():
    results = _fake_results()
    summary = study.summarize(results)
    assert set(summary["latency_cycles_by_style"]) == {
        s for v in results["variants"] for s in v["designs"]
    }


def test_pruned_variant_is_fine_tuned_from_its_unpruned_sibling():
    quick = study.quick_config()
    assert quick.starts_from(quick.variants[1]) == quick.variants[0]
    assert quick.starts_from(quick.variants[0]) is None
    fingerprint = quick.training_fingerprint(quick.variants[1])
    assert fingerprint["epochs"] == quick.prune_epochs
    assert fingerprint["from"] == quick.training_fingerprint(quick.variants[0])


def test_markdown_table_has_every_column_and_peer_reasons():
    text = study.write_markdown(_fake_results())
    for column in (*study.MAIN_COLUMNS, *study.DETAIL_COLUMNS, *study.PEER_COLUMNS):
        assert f" {column} |" in text, column
    assert "synthetic_svhn" in text and "SYNTHETIC" in text
    assert "n/a: hls4ml not installed" in text
    assert "| 353 |" in text  # the tutorial's QP6 DSP count beside ours
    assert "56,531" in text and "1,280" in text


def test_summary_reports_agreement_and_reductions():
    summary = _fake_results()["summary"]
    assert summary["rtl_reference_agreement"] == 1.0
    assert summary["simulated_designs"] == 3
    assert summary["reductions"]["Q6->QP6"]["multipliers"] == pytest.approx(1 - 2451 / 4000)
    assert summary["lut_mode_dsps"] == [0]


def test_results_of_earlier_runs_keep_alkaid_under_da4ml():
    """results.json before session 10 held the adder-graph peer under "da4ml": still read."""
    results = _fake_results()
    for variant in results["variants"]:
        variant["peers"]["da4ml"] = variant["peers"].pop("alkaid")
    assert study.write_markdown(results) == study.write_markdown(_fake_results())


def test_plots_are_written(tmp_path):
    paths = study.write_plots(_fake_results(), tmp_path)
    assert sorted(p.name for p in paths) == sorted(PLOTS)
    assert all(p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------------------------------
TINY = StudyConfig(
    name="test",
    variants=(Variant(4, 0.5), Variant(None, 0.0, bn_before_pool=False)),
    input_shape=(16, 16, 3),
    filters=(4, 4),
    dense=(8,),
    train_images=512,
    test_images=64,
    epochs=1,
    prune_epochs=3,  # 4 batches an epoch: the pruning mask is updated every 10 steps
    sim_images=3,
    peer_images=32,
    multipliers=("dsp", "lut-full"),
    synthesize=False,
    synth_note="skipped in the test",
    fast_sim_build=True,
)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_study_runs_on_the_sweep_engine_rtl_equals_reference(tmp_path, monkeypatch):
    """The study through the sweep engine (2 local Dask workers): a pruned QKeras model
    (fine-tuned from its trained sibling) and a float baseline (post-training quantized,
    conv-pool-BN order) trained, converted in two styles, simulated bit-exact; the peers run
    or are "skipped: not installed" rows; a second run does no work."""
    pytest.importorskip("qkeras")
    monkeypatch.delenv("RTLGEN_SVHN_DIR", raising=False)
    results = study.run_study(tmp_path, TINY)

    for name in ("results.json", "results.md", "spec.yml", *PLOTS):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "sweep" / "results.csv").is_file()
    stored = json.loads((tmp_path / "results.json").read_text())
    text = (tmp_path / "results.md").read_text()
    for column in (*study.MAIN_COLUMNS, *study.DETAIL_COLUMNS, *study.PEER_COLUMNS):
        assert f" {column} |" in text, column
    assert stored["data"]["source"] == "synthetic_svhn" and stored["failures"] == []
    assert [v["short"] for v in stored["variants"]] == ["QP4", "BF"]
    assert stored["variants"][0]["training"]["pruning_schedule"].startswith("pruning ")
    assert stored["variants"][0]["training"]["started_from"] == "q4_bnfirst"
    for variant in stored["variants"]:
        assert 0.0 <= variant["keras_accuracy"] <= 1.0
        assert 0.0 <= variant["reference_accuracy"] <= 1.0
        assert 0.0 <= variant["keras_reference_argmax_agreement"] <= 1.0
        assert set(variant["designs"]) == {"dsp", "lut-full"}
        for design in variant["designs"].values():
            assert design["sim"]["passed"], design["sim"]["report"]
            assert design["sim"]["exact_match_rate"] == 1.0 and design["sim"]["images"] == 3
            assert design["sim"]["latency_cycles"] == design["latency_cycles_manifest"]
            assert design["synth"]["status"] == "n/a: skipped in the test"
        for name in ("hls4ml", "alkaid"):
            status = variant["peers"][name]["status"]
            installed = find_spec(name) is not None
            assert status == "ok" if installed else status == study.NOT_INSTALLED, (name, status)
            if name == "alkaid" and installed:
                # the adder-graph peer rounds like QKeras: its logits are the reference's
                assert variant["peers"][name]["exact_logits_rate"] == 1.0
    # the float baseline is the paper's post-training quantization: fixed<16,6> everywhere
    configs = [p.read_text() for p in (tmp_path / "sweep" / "store").glob("train/*/precision.yml")]
    assert sum("layers:" in c and "result: fixed<16,6>" in c for c in configs) == 1, configs
    assert stored["variants"][1]["input_type"] == "fixed<16,6>"
    assert stored["variants"][1]["layer_order"] == "conv-pool-BN-ReLU"
    assert results["summary"]["rtl_reference_agreement"] == 1.0

    again = study.run_study(tmp_path, TINY)
    assert again["sweep"]["steps_computed"] == 0
    assert again["sweep"]["steps_cached"] == stored["sweep"]["steps_computed"]
    assert all(v["training"]["cached"] for v in again["variants"])


@pytest.mark.parametrize("seed", [0, 1])
def test_alkaid_dense_part_equals_reference(seed):
    """The adder-graph peer's tracing of a dense part (ReLU-quantized hidden layer, exact
    logits) computes rtlgen's integer reference exactly, rounding ties half to even: its
    interpreter (the arithmetic of its RTL) against `run_int` on random and extreme inputs."""
    pytest.importorskip("alkaid")
    import numpy as np

    from rtlgen.quant.reference import run_int

    from .nets import mlp

    graph = mlp(sizes=(10, 16, 12, 5), sparsity=0.3, seed=seed, flatten_after=(0,))
    dense, index = study.dense_part(graph)
    assert index == 2 and len(dense.nodes) == 3  # input, the ReLU layer, the logits
    t = dense.input.out_type
    rng = np.random.default_rng(seed)
    x = rng.integers(t.min_int, t.max_int + 1, size=(400, *dense.input_shape))
    x[0], x[1] = t.max_int, t.min_int
    comb = study.trace_alkaid(dense)
    got = np.asarray(comb.predict(t.to_float(x).astype(np.float64), n_threads=1))
    expected = dense.output.out_type.to_float(run_int(dense, x))
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


def test_alkaid_route_rejects_layers_it_does_not_map():
    pytest.importorskip("alkaid")
    from .nets import conv_net

    graph = conv_net()
    with pytest.raises(RtlgenError, match="alkaid route: layer 'conv'"):
        study.trace_alkaid(graph)
