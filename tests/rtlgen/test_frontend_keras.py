"""The front-end on models written by real Keras/QKeras: every layout reads to the same
graph as the in-memory model, and the geometry agrees with Keras's own output shapes."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.frontend import read_model
from rtlgen.passes import lower
from rtlgen.quant.errors import UnsupportedError
from tests.models import MODELS, build, graph_signature, save_layouts

pytest.importorskip("qkeras")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    out = {}
    for name in MODELS:
        model = build(name)
        out[name] = (
            model,
            save_layouts(model, root / name),
        )
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_every_layout_reads_to_the_same_graph(saved, name):
    model, layouts = saved[name]
    want = graph_signature(lower(read_model(model)))
    expected_layouts = {
        "full_h5",
        "json",
        "json_new_weights",
        "json_bare_list",
        "json_no_input_layer",
        "json_no_module",
        "json_string_quantizers",
        "functional_json",
        "functional_h5",
        "keras",
        "functional_keras",
    }
    assert expected_layouts <= set(layouts)
    for layout, (path, weights) in layouts.items():
        assert graph_signature(lower(read_model(path, weights))) == want, (
            f"{name}: {layout} differs"
        )


@pytest.mark.parametrize("name", list(MODELS))
def test_output_shapes_match_keras(saved, name):
    model, _ = saved[name]
    graph = read_model(model)
    last_node_of = {node.source: node for node in graph.nodes[1:]}
    for source, node in last_node_of.items():
        layer = source.split("+")[-1]  # an output's no-op last layer (softmax) ends its source
        assert tuple(model.get_layer(layer).output_shape[1:]) == node.out_shape, source
    assert graph.input_shape == tuple(model.input_shape[1:])


def test_pruning_wrapper_is_rejected_and_stripped_model_keeps_its_zeros():
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    model = build("float_mlp")
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0, frequency=1)
    )
    with pytest.raises(UnsupportedError, match="strip_pruning"):
        read_model(pruned)
    pruned.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 20)).astype(np.float32)
    pruned.fit(
        x,
        np.zeros((16, 10)),
        epochs=1,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    graph = read_model(stripped)
    d1 = next(n for n in graph.nodes if n.name == "d1")
    kernel = stripped.get_layer("d1").kernel.numpy()
    assert np.mean(kernel == 0) >= 0.45
    np.testing.assert_array_equal(d1.weights.values == 0, kernel == 0)
    del tf


def test_lambda_model_file_is_rejected(tmp_path):
    """The Lambda's marshalled Python code is in the file; rtlgen rejects the layer by its
    class name and never unmarshals or runs anything."""
    import tensorflow as tf

    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer((4,)),
            tf.keras.layers.Dense(3, name="d"),
            tf.keras.layers.Lambda(lambda x: x * 2, name="lam"),
        ]
    )
    model.save(tmp_path / "lam.h5")
    with pytest.raises(UnsupportedError, match="layer 'lam' \\(Lambda\\).*never runs"):
        read_model(tmp_path / "lam.h5")
