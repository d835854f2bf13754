"""The sweep spec: parsed once into typed values; every mistake is one SpecError naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtlgen.quant.errors import RtlgenError
from rtlgen.sweep.spec import (
    MAX_SPEC_BYTES,
    AddressCluster,
    JobqueueCluster,
    LocalCluster,
    SpecError,
    Step,
    load_spec,
)

HEAD = "model: model.json\nweights: model_weights.h5\n"


def write_spec(tiny: Path, body: str, name: str = "spec.yml") -> Path:
    path = tiny / name
    path.write_text(HEAD + body)
    return path


def test_smallest_spec_from_the_issue_parses_as_written(tiny, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the spec's folder, not the cwd
    spec = load_spec(tiny / "spec.yml", input=tiny / "x.npy")
    assert spec.model == tiny / "model.json" and spec.weights == tiny / "model_weights.h5"
    assert spec.steps == (Step.CONVERT, Step.PREDICT)
    assert spec.cluster == LocalCluster(workers=2, threads_per_worker=1)
    assert [p.label() for p in spec.points()] == [
        "multiplier=dsp parallelism=auto",
        "multiplier=dsp parallelism=full",
        "multiplier=lut parallelism=auto",
        "multiplier=lut parallelism=full",
    ]


@pytest.mark.parametrize(
    "body,message",
    [
        (
            "axes: {bits: [4, 8]}\n",
            "axes: unknown axis 'bits' for a model file (supported: multiplier",
        ),
        (
            "axes: {multiplier: [dsp, fast]}\n",
            "multiplier value 'fast' is not supported (supported: auto, dsp, lut)",
        ),
        ("axes: {adders_per_stage: [2, 9]}\n", "adders_per_stage value 9 is not supported"),
        ("axes: {adders_per_stage: [true]}\n", "adders_per_stage value True is not supported"),
        ("axes: {adders_per_stage: [2.0]}\n", "adders_per_stage value 2.0 is not supported"),
        ("axes: {multiplier: [dsp, dsp]}\n", "multiplier lists dsp more than once"),
        ("axes: {multiplier: []}\n", "axes: multiplier has no values"),
        ("axes: {input_type: ['fixed<99,1>']}\n", "axes: input_type"),
        ("axes: {input_type: [8]}\n", "input_type value 8"),
        ("axes: {weight_bits: [4, 8]}\n", "weight_bits needs a built-in trainable model"),
        ("axes: {sparsity: [0.5]}\n", "sparsity needs a built-in trainable model"),
        ("axes: [multiplier]\n", "axes: expected a mapping"),
        (
            "steps: [convert, place]\n",
            "steps: unknown step 'place' (supported: train, convert, predict, sim, synth, pnr, hls4ml, alkaid)",
        ),
        ("steps: [convert, convert]\n", "steps: convert is listed twice"),
        ("steps: [synth]\n", "steps: synth needs convert in steps"),
        ("steps: [sim]\n", "steps: sim needs convert"),
        ("steps: [train, convert]\n", "steps: train needs a built-in trainable model"),
        ("steps: []\n", "steps: no step given"),
        ("steps: [predict]\n", "steps: predict needs inputs: pass --input"),
        ("steps: [convert, hls4ml]\n", "steps: hls4ml needs a built-in trainable model"),
        ("peers: {images: 0}\n", "peers.images: 0 is not supported"),
        ("axes: {layer_order: [bn_first]}\n", "layer_order needs a built-in trainable model"),
        ("labels: model.json\n", "labels: given without inputs"),
        ("colour: red\n", "unknown key 'colour' (supported: model, weights"),
        ("sim: {samples: 0}\n", "sim.samples: 0 is not supported"),
        ("sim: {backpressure: 0.99}\n", "sim.backpressure: 0.99 is not supported"),
        ("sim: {speed: 1}\n", "sim: unknown key 'speed'"),
        (
            "synth: {family: virtex2}\n",
            "synth.family: 'virtex2' is not supported (supported: xcup, ecp5)",
        ),
        ("pnr: {board: nosuchboard}\n", "pnr.board: 'nosuchboard' is not supported"),
        ("cluster: {local: {workers: 0}}\n", "cluster.local.workers: 0 is not supported"),
        ("cluster: {local: {gpus: 1}}\n", "cluster.local: unknown key 'gpus'"),
        ("cluster: {kubernetes: {}}\n", "cluster: unknown kind 'kubernetes'"),
        ("cluster: 'http://host:8786; rm -rf /'\n", "is not a scheduler address"),
        (
            "cluster: {jobqueue: {kind: torque}}\n",
            "cluster.jobqueue.kind: 'torque' is not supported (supported: slurm, htcondor, pbs, sge, lsf)",
        ),
        (
            "cluster: {jobqueue: {kind: slurm, jobs: -1}}\n",
            "cluster.jobqueue.jobs: -1 is not supported",
        ),
        (
            "cluster: {jobqueue: {kind: slurm, memory: {a: [1]}}}\n",
            "cluster.jobqueue.memory: expected a number, string, or a list or mapping",
        ),
        (
            "cluster: {jobqueue: {kind: slurm, 'a-b': 1}}\n",
            "cluster.jobqueue: option name 'a-b' is not an identifier",
        ),
        ("sample: {random: 0}\n", "sample.random: 0 is not supported"),
        ("sample: {seed: 1}\n", "sample: 'random' is missing"),
        ("metric: speed\n", "metric: 'speed' is not supported (supported: accuracy"),
        ("config: missing.yml\n", "config: "),
    ],
)
def test_spec_mistakes_are_one_spec_error_naming_the_key(tiny, body, message):
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tiny, body))
    text = str(caught.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize(
    "text,message",
    [
        ("weights: model_weights.h5\n", "'model' is missing"),
        ("model: nowhere.json\n", "model: "),
        ("model: [a, b]\n", "model: expected a file path"),
        ("- a\n- b\n", "expected a mapping of keys"),
        ("model: [unclosed\n", "invalid YAML at line"),
        (
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "aliases expanded",
        ),
    ],
)
def test_broken_spec_files_are_one_spec_error(tiny, text, message):
    path = tiny / "broken.yml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert message in str(caught.value)


def test_model_that_does_not_exist_names_the_resolved_path(tiny, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    path = tiny / "other.yml"
    path.write_text("model: nowhere.json\n")
    with pytest.raises(SpecError, match=f"model: {tiny / 'nowhere.json'} does not exist"):
        load_spec(path)


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "oversized"])
def test_unreadable_spec_paths_are_refused_before_reading(tmp_path, kind):
    path = tmp_path / "spec.yml"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        import os

        os.mkfifo(path)  # reading would block forever
    elif kind == "oversized":
        path.write_text("# " + "x" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(path) in str(caught.value)


def test_spec_error_is_an_rtlgen_error():
    assert issubclass(SpecError, RtlgenError)


def test_random_sample_is_reproducible_and_a_subset_of_the_grid(tiny):
    body = (
        "axes: {multiplier: [auto, dsp, lut], parallelism: [auto, full], adders_per_stage: [1, 2, 3, 4]}\n"
        "sample: {random: 5, seed: 7}\n"
    )
    spec = load_spec(write_spec(tiny, body))
    grid = set(load_spec(write_spec(tiny, body.split("sample")[0], "grid.yml")).points())
    first, again = spec.points(), load_spec(write_spec(tiny, body)).points()
    assert first == again and len(set(first)) == 5 and set(first) <= grid
    other = load_spec(write_spec(tiny, body.replace("seed: 7", "seed: 8"), "other.yml")).points()
    assert other != first


def test_sample_larger_than_the_grid_takes_the_whole_grid(tiny):
    spec = load_spec(write_spec(tiny, "axes: {multiplier: [dsp, lut]}\nsample: {random: 50}\n"))
    assert len(spec.points()) == 2


def test_a_single_value_axis_is_accepted_without_a_list(tiny):
    spec = load_spec(write_spec(tiny, "axes: {multiplier: lut, adders_per_stage: 3}\n"))
    assert [p.values for p in spec.points()] == [(("multiplier", "lut"), ("adders_per_stage", 3))]


def test_input_type_values_are_normalized(tiny):
    spec = load_spec(write_spec(tiny, "axes: {input_type: ['ap_fixed<8,1>']}\n"))
    assert spec.axes[0].values == ("fixed<8,1>",)


@pytest.mark.parametrize(
    "cluster,workers,expected",
    [
        ("{local: {workers: 2}}", 3, LocalCluster(workers=3)),
        ("local", None, LocalCluster()),
        ("'tcp://10.0.0.1:8786'", None, AddressCluster("tcp://10.0.0.1:8786")),
        (
            "{jobqueue: {kind: slurm, cores: 4, memory: 8GB, jobs: 2}}",
            5,
            JobqueueCluster("slurm", 5, (("cores", 4), ("memory", "8GB"))),
        ),
    ],
)
def test_cluster_forms_and_the_workers_override(tiny, cluster, workers, expected):
    spec = load_spec(write_spec(tiny, f"cluster: {cluster}\n"), workers=workers)
    assert spec.cluster == expected


def test_workers_override_does_not_apply_to_a_scheduler_address(tiny):
    with pytest.raises(SpecError, match="--workers does not apply"):
        load_spec(write_spec(tiny, "cluster: 'tcp://host:8786'\n"), workers=2)


def test_command_line_inputs_override_the_spec_and_must_exist(tiny, tmp_path):
    spec = load_spec(write_spec(tiny, "input: x.npy\n"), input=tiny / "y.npy")
    assert spec.input == tiny / "y.npy"
    with pytest.raises(SpecError, match="--input: .*missing.npy does not exist"):
        load_spec(write_spec(tiny, ""), input=tmp_path / "missing.npy")


# ---------------------------------------------------------------------------------------
# built-in trainable models
def builtin_spec(tmp_path: Path, text: str):
    path = tmp_path / "builtin.yml"
    path.write_text(text)
    return load_spec(path)


def test_builtin_model_takes_training_axes_and_trains_first(tmp_path):
    spec = builtin_spec(
        tmp_path,
        "model: {builtin: jet_mlp, epochs: 2}\n"
        "axes: {weight_bits: [4, 6], sparsity: [0, 0.5], multiplier: [lut]}\n",
    )
    assert spec.trained and spec.model.name == "jet_mlp" and spec.model.epochs == 2
    assert spec.steps == (Step.TRAIN, Step.CONVERT)
    assert spec.axes[1].values == (0.0, 0.5)


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "model: {builtin: resnet50}\n",
            "model.builtin: 'resnet50' is not a built-in model (supported: jet_mlp, svhn_cnn)",
        ),
        ("model: {builtin: jet_mlp, lr: 3}\n", "model: unknown key 'lr'"),
        ("model: {builtin: jet_mlp, epochs: 0}\n", "model.epochs: 0 is not supported"),
        (
            "model: {builtin: jet_mlp}\nweights: w.h5\n",
            "weights: a built-in model (jet_mlp) has no weights file",
        ),
        (
            "model: {builtin: jet_mlp}\nsteps: [convert]\n",
            "steps: the built-in model jet_mlp is trained first: add train",
        ),
        (
            "model: {builtin: jet_mlp}\naxes: {weight_bits: [1]}\n",
            "weight_bits value 1 is not supported (an integer from 2 to 16)",
        ),
        (
            "model: {builtin: jet_mlp}\naxes: {sparsity: [1.0]}\n",
            "sparsity value 1.0 is not supported",
        ),
        (
            "model: {builtin: jet_mlp}\naxes: {sparsity: ['half']}\n",
            "sparsity value 'half' is not supported",
        ),
        (
            "model: {builtin: svhn_cnn}\naxes: {activation_bits: [4]}\n",
            "unknown axis 'activation_bits' for the built-in model svhn_cnn",
        ),
        (
            "model: {builtin: jet_mlp}\naxes: {weight_bits: [float, 6]}\n",
            "weight_bits float (the float model, post-training quantized) is a value of the built-in svhn_cnn only",
        ),
        (
            "model: {builtin: svhn_cnn}\naxes: {weight_bits: [double]}\n",
            "weight_bits value 'double' is not supported",
        ),
        (
            "model: {builtin: svhn_cnn}\naxes: {layer_order: [bn_last]}\n",
            "layer_order value 'bn_last' is not supported (supported: bn_first, pool_first)",
        ),
        (
            "model: {builtin: jet_mlp, filters: [4]}\n",
            "model.filters: only the built-in svhn_cnn has filters",
        ),
        ("model: {builtin: svhn_cnn, image_size: 24}\n", "model.image_size: 24 is not supported"),
        (
            "model: {builtin: svhn_cnn, image_size: 4, filters: [4, 4, 4]}\n",
            "model.filters: 3 conv blocks pool a 4x4 image below 1x1",
        ),
        ("model: {builtin: svhn_cnn, dense: []}\n", "model.dense: expected a list of 1 to 5"),
        (
            "model: {builtin: svhn_cnn, batch_size: 0}\n",
            "model.batch_size: 0 is not supported (an integer from 1 to 65,536)",
        ),
        ("model: {builtin: jet_mlp, batch_size: 32.0}\n", "model.batch_size: 32.0 is not"),
        (
            "model: {builtin: svhn_cnn, learning_rate: 0}\n",
            "model.learning_rate: 0 is not supported (a number above 0 and at most 1",
        ),
        ("model: {builtin: svhn_cnn, learning_rate: 1.5}\n", "model.learning_rate: 1.5 is not"),
        ("model: {builtin: svhn_cnn, learning_rate: .nan}\n", "model.learning_rate: nan is not"),
        ("model: {builtin: jet_mlp, learning_rate: fast}\n", "model.learning_rate: 'fast' is"),
        ("model: {builtin: jet_mlp, learning_rate: true}\n", "model.learning_rate: True is"),
        (
            "model: {builtin: svhn_cnn, prune_frequency: 0}\n",
            "model.prune_frequency: 0 is not supported (an integer from 1 to 1,000,000)",
        ),
        (
            "model: {builtin: jet_mlp, prune_epochs: 2}\n",
            "model.prune_epochs: only the built-in svhn_cnn fine-tunes a pruned variant",
        ),
        (
            "model: {builtin: svhn_cnn, train_samples: 1000, prune_frequency: 100}\n"
            "axes: {sparsity: [0, 0.5]}\n",
            "model.prune_frequency: 100 is more than the 24 training steps of a pruned variant "
            "(1000 train_samples in batches of 128, 3 prune_epochs): at most 24",
        ),
    ],
)
def test_builtin_model_mistakes_are_one_spec_error(tmp_path, text, message):
    with pytest.raises(SpecError) as caught:
        builtin_spec(tmp_path, text)
    assert message in str(caught.value)


def test_training_settings_are_model_keys(tmp_path):
    """batch_size, learning_rate (also in YAML 1.1's exponent spelling, which it reads as a
    string) and prune_frequency, as written; left out: None, the model's default."""
    spec = builtin_spec(
        tmp_path,
        "model: {builtin: svhn_cnn, batch_size: 64, learning_rate: 1e-3, prune_frequency: 20}\n",
    )
    assert (spec.model.batch_size, spec.model.learning_rate, spec.model.prune_frequency) == (
        64,
        0.001,
        20,
    )
    spec = builtin_spec(tmp_path, "model: {builtin: jet_mlp, learning_rate: 1}\n")
    assert spec.model.learning_rate == 1.0 and isinstance(spec.model.learning_rate, float)
    assert spec.model.batch_size is None and spec.model.prune_frequency is None


def test_a_prune_frequency_unpruned_variants_never_reach_is_accepted(tmp_path):
    """Only a pruned variant updates a mask: without sparsity the step count does not bind."""
    spec = builtin_spec(
        tmp_path, "model: {builtin: jet_mlp, train_samples: 1000, prune_frequency: 100}\n"
    )
    assert spec.model.prune_frequency == 100


def test_svhn_float_baseline_and_layer_order_are_training_axes(tmp_path):
    """The study's float baselines and both layer orders: train parameters (and so digests)
    of their own; the peers read the trained model, one task per variant."""
    from rtlgen.sweep.engine import plan_sweep

    spec = builtin_spec(
        tmp_path,
        "model: {builtin: svhn_cnn, filters: [4, 4], dense: [8], image_size: 16}\n"
        "axes: {weight_bits: [float, 6], layer_order: [bn_first, pool_first], multiplier: [dsp, lut]}\n"
        "steps: [train, convert, hls4ml, alkaid]\npeers: {images: 7}\n",
    )
    assert spec.model.filters == (4, 4) and spec.model.image_size == 16
    plan = plan_sweep(spec, tmp_path / "store", "run", {})
    trains = [t for t in plan.tasks.values() if t.step is Step.TRAIN]
    assert {(t.params.weight_bits, t.params.layer_order) for t in trains} == {
        ("float", "bn_first"),
        ("float", "pool_first"),
        (6, "bn_first"),
        (6, "pool_first"),
    }
    peers = [t for t in plan.tasks.values() if t.step in (Step.HLS4ML, Step.ALKAID)]
    assert len(peers) == 8 and {t.upstream_step for t in peers} == {Step.TRAIN}
    assert {t.params.images for t in peers} == {7}
    assert all(t.params.synth is None for t in peers)  # no synth step: no peer synthesis


def test_pruned_svhn_variant_is_fine_tuned_from_its_trained_sibling(tmp_path):
    from rtlgen.sweep.engine import plan_sweep

    spec = builtin_spec(
        tmp_path,
        "model: {builtin: svhn_cnn}\naxes: {sparsity: [0.5]}\nsteps: [train, convert, predict]\n",
    )
    plan = plan_sweep(spec, tmp_path / "store", "run", {})
    trains = [t for t in plan.tasks.values() if t.step is Step.TRAIN]
    assert [t.params.sparsity for t in trains] == [0.0, 0.5]  # the sibling first, not a point
    assert trains[1].upstream_digest == trains[0].digest and trains[1].upstream_step is Step.TRAIN
    convert = next(t for t in plan.tasks.values() if t.step is Step.CONVERT)
    assert convert.upstream_step is Step.TRAIN and convert.upstream_digest == trains[1].digest


def test_exclude_leaves_matching_points_out_of_the_grid(tiny):
    spec = load_spec(
        write_spec(
            tiny,
            "axes: {multiplier: [dsp, lut], parallelism: [auto, full]}\n"
            "exclude: [{multiplier: lut, parallelism: full}]\n",
        )
    )
    assert [p.label() for p in spec.points()] == [
        "multiplier=dsp parallelism=auto",
        "multiplier=dsp parallelism=full",
        "multiplier=lut parallelism=auto",
    ]


@pytest.mark.parametrize(
    "exclude,message",
    [
        ("{multiplier: lut}", "exclude: expected a list"),
        ("[{pipeline: latency}]", "exclude[0]: 'pipeline' is not one of the axes (multiplier)"),
        ("[{multiplier: auto}]", "exclude[0]: multiplier 'auto' is not one of the axis's values"),
        ("[{multiplier: fast}]", "multiplier value 'fast' is not supported"),
        ("[{}]", "exclude[0]: expected a mapping"),
    ],
)
def test_exclude_mistakes_are_one_spec_error(tiny, exclude, message):
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tiny, f"axes: {{multiplier: [dsp, lut]}}\nexclude: {exclude}\n"))
    assert message in str(caught.value)


@pytest.mark.parametrize("value", ["yes please", "1"])
def test_sim_fast_build_is_a_boolean(tiny, value):
    with pytest.raises(SpecError, match="sim.fast_build"):
        load_spec(write_spec(tiny, f"sim: {{fast_build: {value!r}}}\n"))


# ---------------------------------------------------------------------------------------
# docs/SWEEP.md: every cluster example parses, and builds its batch job without submitting it
DOCS = Path(__file__).resolve().parents[3] / "docs" / "SWEEP.md"


def cluster_examples() -> list[str]:
    import re

    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    return [block for block in blocks if block.startswith("cluster:")]


def test_docs_have_a_slurm_and_an_htcondor_example():
    kinds = " ".join(cluster_examples())
    assert "kind: slurm" in kinds and "kind: htcondor" in kinds


@pytest.mark.parametrize("example", cluster_examples(), ids=lambda text: text.split()[-1][:20])
def test_docs_cluster_examples_parse(tiny, example):
    spec = load_spec(write_spec(tiny, example))
    if isinstance(spec.cluster, JobqueueCluster):
        pytest.importorskip("dask_jobqueue")
        from rtlgen.sweep.engine import jobqueue_cluster

        cluster = jobqueue_cluster(spec.cluster)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
        assert (
            "distributed.cli.dask_worker" in script
            or "dask-worker" in script
            or "dask worker" in script
        )


def test_unknown_jobqueue_option_is_one_line_error(tiny):
    pytest.importorskip("dask_jobqueue")
    from rtlgen.sweep.engine import jobqueue_cluster

    spec = load_spec(
        write_spec(tiny, "cluster: {jobqueue: {kind: slurm, cores: 1, memory: 1GB, colour: red}}\n")
    )
    with pytest.raises(RtlgenError, match=r"cluster.jobqueue \(slurm\): .*colour"):
        jobqueue_cluster(spec.cluster)
