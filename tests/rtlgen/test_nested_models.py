"""rtlgen/frontend/keras_config.py `model_layers`: models used as layers (a Sequential or
Functional inside another model, e.g. a backbone or a block) are inlined, from every file
kind tf.keras 2.15 writes and in memory; QKeras models stay bit-exact. (Keras 3's nested
files: tests/rtlgen/test_keras3.py, golden func_nested.)"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from rtlgen.frontend import read_model
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from tests.models import exact_inputs

from .ops.network_checks import bit_exact_in_simulator

tf = pytest.importorskip("tensorflow")
qkeras = pytest.importorskip("qkeras")
pytestmark = pytest.mark.timeout(300)

Q4 = "quantized_bits(4,0,alpha=1)"
INPUT = PrecisionConfig(input=FixedType(8, 4))


def backbone_model():
    """A QKeras model of two nested models: a Functional conv backbone and a Sequential
    dense block holding another Sequential (two deep, no InputLayer inside)."""
    layers = tf.keras.layers
    tf.keras.utils.set_random_seed(7)
    b_in = tf.keras.Input((6, 6, 2), name="b_in")
    b = qkeras.QConv2D(4, 3, kernel_quantizer=Q4, bias_quantizer=Q4, name="b_conv")(b_in)
    b = qkeras.QActivation("quantized_relu(4,2)", name="b_relu")(b)
    backbone = tf.keras.Model(b_in, layers.MaxPooling2D(2, name="b_pool")(b), name="backbone")
    inner = tf.keras.Sequential(
        [
            qkeras.QDense(6, kernel_quantizer=Q4, bias_quantizer=Q4, name="i_fc"),
            qkeras.QActivation("quantized_relu(4,2)", name="i_relu"),
        ],
        name="inner",
    )
    block = tf.keras.Sequential(
        [
            layers.InputLayer(input_shape=(16,), name="h_in"),
            qkeras.QDense(8, kernel_quantizer=Q4, bias_quantizer=Q4, name="h_fc"),
            qkeras.QActivation("quantized_relu(4,2)", name="h_relu"),
            inner,
        ],
        name="block",
    )
    x = tf.keras.Input((6, 6, 2), name="x")
    h = layers.Flatten(name="flat")(backbone(x))
    out = qkeras.QDense(3, kernel_quantizer=Q4, bias_quantizer=Q4, name="head")(block(h))
    return tf.keras.Model(x, out, name="nested_qkeras")


def sequential_of_models():
    """A Sequential whose first layer is a model: its input is the model's input."""
    tf.keras.utils.set_random_seed(8)
    first = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(5,), name="s_in"),
            qkeras.QDense(4, kernel_quantizer=Q4, bias_quantizer=Q4, name="s_fc"),
            qkeras.QActivation("quantized_relu(4,2)", name="s_relu"),
        ],
        name="first",
    )
    head = qkeras.QDense(2, kernel_quantizer=Q4, bias_quantizer=Q4, name="s_head")
    return tf.keras.Sequential([first, head], name="seq_of_models")


def saved(model, tmp_path) -> dict:
    """``model`` in every layout tf.keras 2.15 writes for it (and in memory)."""
    stem = tmp_path / model.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(f"{stem}.h5")
        model.save(f"{stem}.keras")
        model.save_weights(f"{stem}_weights.h5")  # by layer name
        model.save_weights(f"{stem}.weights.h5")  # the .keras archive's layout
    (tmp_path / "model.json").write_text(model.to_json())
    json_path = tmp_path / "model.json"
    return {
        "h5": (f"{stem}.h5", None),
        "keras": (f"{stem}.keras", None),
        "json+h5": (json_path, f"{stem}_weights.h5"),
        "json+weights.h5": (json_path, f"{stem}.weights.h5"),
        "in-memory": (model, None),
    }


@pytest.mark.parametrize("make, shape", [(backbone_model, (6, 6, 2)), (sequential_of_models, (5,))])
def test_nested_models_read_from_every_layout_predict_exactly_as_qkeras(make, shape, tmp_path):
    model = make()
    x = exact_inputs(shape, 64, seed=1)
    want = model.predict(x, verbose=0)
    assert np.abs(want).max() > 0
    for layout, (path, weights) in saved(model, tmp_path).items():
        graph = lower(read_model(path, weights), INPUT)
        nested = {layer.name for layer in model.layers if isinstance(layer, tf.keras.Model)}
        assert not nested & {node.name for node in graph.nodes}, layout
        np.testing.assert_array_equal(predict(graph, x), want, err_msg=layout)


def test_nested_model_graph_is_bit_exact_under_backpressure(tmp_path):
    model = backbone_model()
    graph = lower(read_model(saved(model, tmp_path)["h5"][0]), INPUT)
    assert [n.name for n in graph.nodes][:3] == ["x", "b_conv", "b_pool"]  # b_relu fused
    bit_exact_in_simulator(graph, n=3, seed=4)


def test_a_nested_model_called_twice_is_refused_in_one_line(tmp_path):
    """A nested model applied to two inputs shares its weights: one line, as for any
    shared layer."""
    tf.keras.utils.set_random_seed(9)
    block = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(4,))], name="shared")
    a, b = tf.keras.Input((4,), name="a"), tf.keras.Input((4,), name="b")
    model = tf.keras.Model([a, b], tf.keras.layers.Add(name="add")([block(a), block(b)]))
    path = tmp_path / "shared.h5"
    model.save(path)
    with pytest.raises(UnsupportedError) as info:
        read_model(path)
    message = str(info.value)
    assert "\n" not in message and "layer 'shared' (Sequential) is called 2 times" in message


def test_nested_weights_are_looked_up_by_layer_in_the_nested_group(tmp_path):
    """A Keras 2 file keeps the nested block's weights in the group 'block' as
    '<layer>/kernel:0': each inlined layer gets its own, not a neighbour's."""
    model = backbone_model()
    config = json.loads(model.to_json())
    block = next(e for e in config["config"]["layers"] if e["config"]["name"] == "block")
    assert block["class_name"] == "Sequential"
    graph = read_model(saved(model, tmp_path)["h5"][0])
    for name in ("h_fc", "i_fc"):
        keras_kernel = model.get_layer("block").get_layer(name) if name == "h_fc" else (
            model.get_layer("block").get_layer("inner").get_layer(name)
        )
        np.testing.assert_array_equal(
            graph.node(name).weights.values, keras_kernel.get_weights()[0]
        )
