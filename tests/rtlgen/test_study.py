"""The SVHN study machinery (rtlgen/study.py): configurations, published numbers, the results
table and plots, and (slow) a tiny end-to-end run: train -> convert -> Verilator -> peers."""

from __future__ import annotations

import json

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


def _variant(v: Variant, designs: dict, hls4ml: dict, da4ml: dict) -> dict:
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
        "peers": {"hls4ml": hls4ml, "da4ml": da4ml},
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
        "whole_model": "n/a: da4ml 0.6 has no streaming conv layers",
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
    assert set(quick.sim_styles) == set(quick.multipliers)
    assert not quick.synthesize and "quick" in quick.synth_note


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


def test_plots_are_written(tmp_path):
    paths = study.write_plots(_fake_results(), tmp_path)
    assert sorted(p.name for p in paths) == sorted(PLOTS)
    assert all(p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_study_end_to_end_rtl_equals_reference(tmp_path, monkeypatch):
    pytest.importorskip("qkeras")
    monkeypatch.delenv("RTLGEN_SVHN_DIR", raising=False)
    config = StudyConfig(
        name="test",
        variants=(Variant(4), Variant(4, 0.5)),
        input_shape=(16, 16, 3),
        filters=(4, 4),
        dense=(8,),
        train_images=256,
        test_images=64,
        epochs=1,
        prune_epochs=1,
        batch_size=32,
        prune_frequency=2,
        sim_images=3,
        peer_images=32,
        synthesize=False,
        synth_note="skipped in the test",
        fast_sim_build=True,
    )
    results = study.run_study(tmp_path, config)

    for name in ("results.json", "results.md", *PLOTS):
        assert (tmp_path / name).is_file(), name
    stored = json.loads((tmp_path / "results.json").read_text())
    text = (tmp_path / "results.md").read_text()
    for column in (*study.MAIN_COLUMNS, *study.DETAIL_COLUMNS, *study.PEER_COLUMNS):
        assert f" {column} |" in text, column
    assert stored["data"]["source"] == "synthetic_svhn"
    assert len(stored["variants"]) == 2
    assert stored["variants"][1]["training"]["pruning_schedule"].startswith("pruning ")
    for variant in stored["variants"]:
        assert (
            0.0 <= variant["keras_accuracy"] <= 1.0 and 0.0 <= variant["reference_accuracy"] <= 1.0
        )
        for style in ("dsp", "lut"):
            design = variant["designs"][style]
            assert design["sim"]["passed"], design["sim"]["report"]
            assert design["sim"]["exact_match_rate"] == 1.0
            assert design["sim"]["latency_cycles"] == design["latency_cycles_manifest"]
            assert design["synth"]["status"] == "n/a: skipped in the test"
        for name, peer in variant["peers"].items():
            status = peer["status"]
            assert status == "ok" or (status.startswith("n/a: ") and len(status) > 6), (
                name,
                status,
            )
            if name == "da4ml" and peer.get("tool") == "alkaid" and status == "ok":
                # the adder-graph peer rounds like QKeras: its logits are the reference's
                assert peer["exact_logits_rate"] == 1.0
    assert results["summary"]["rtl_reference_agreement"] == 1.0

    again = study.run_study(tmp_path, config)
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
