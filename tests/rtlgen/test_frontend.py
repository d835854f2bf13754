"""The Keras front-end on hand-made configs and weight files (no TensorFlow needed).

Layouts written by real Keras/QKeras are tested in test_frontend_keras.py; here the configs
are written by hand to pin down geometry, layer mapping, every rejection and every
malformed-file error message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from rtlgen import ir
from rtlgen.frontend import read_model
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import predict
from tests.models import layer_entry, sequential_config, write_full_h5, write_weights_h5

DATA = Path(__file__).resolve().parents[2] / "rtlgen" / "data"
RNG = np.random.default_rng(0)


def conv(name, filters, kernel, **extra):
    config = {
        "name": name,
        "filters": filters,
        "kernel_size": kernel,
        "strides": extra.pop("strides", 1),
        "padding": extra.pop("padding", "valid"),
        "data_format": "channels_last",
        "dilation_rate": 1,
        "groups": 1,
        "activation": "linear",
        "use_bias": True,
        **extra,
    }
    return config


def write(tmp_path: Path, layers, weights, input_shape=(9, 9, 2), name="m", full=True):
    """A model as full .h5 (full=True) or as (.json, weights .h5)."""
    config = sequential_config(layers, input_shape)
    if full:
        return write_full_h5(tmp_path / f"{name}.h5", config, weights), None
    (tmp_path / f"{name}.json").write_text(json.dumps(config))
    return tmp_path / f"{name}.json", write_weights_h5(tmp_path / f"{name}_w.h5", weights)


def conv_weights(kernel, cin, cout, bias=True):
    w = {"kernel": RNG.normal(size=(*kernel, cin, cout))}
    if bias:
        w["bias"] = RNG.normal(size=cout)
    return w


def read(tmp_path, layers, weights, input_shape=(9, 9, 2), full=True):
    return read_model(*write(tmp_path, layers, weights, input_shape, full=full))


# ---------------------------------------------------------------------------------------
# TensorFlow stays out
# ---------------------------------------------------------------------------------------
def test_reading_files_does_not_import_tensorflow(tmp_path):
    full, _ = write(
        tmp_path, [layer_entry("Conv2D", conv("c", 2, [3, 3]))], {"c": conv_weights((3, 3), 2, 2)}
    )
    archive = tmp_path / "m.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(
            "config.json",
            json.dumps(
                sequential_config(
                    [
                        layer_entry(
                            "Dense",
                            {"name": "d", "units": 3, "activation": "relu", "use_bias": True},
                        )
                    ],
                    (4,),
                )
            ),
        )
        with h5py.File(tmp_path / "w.h5", "w") as f:
            f.create_dataset("layers/dense/vars/0", data=np.ones((4, 3), np.float32))
            f.create_dataset("layers/dense/vars/1", data=np.ones(3, np.float32))
        z.write(tmp_path / "w.h5", "model.weights.h5")
    code = (
        "import sys\n"
        "from rtlgen.frontend import read_model\n"
        f"read_model({str(DATA / 'demo_cnn.json')!r}, {str(DATA / 'demo_cnn_weights.h5')!r})\n"
        f"read_model({str(full)!r})\n"
        f"read_model({str(archive)!r})\n"
        "bad = [m for m in ('tensorflow', 'keras', 'qkeras', 'tf_keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_demo_model_matches_its_stored_qkeras_logits():
    """The bundled demo (QConv2D, QActivation string quantizer, MaxPool, QDense, softmax)."""
    samples = np.load(DATA / "demo_samples.npz")
    graph = read_model(DATA / "demo_cnn.json", DATA / "demo_cnn_weights.h5")
    assert graph.softmax and [n.op for n in graph.nodes] == [
        "input",
        "conv2d",
        "activation",
        "maxpool2d",
        "flatten",
        "dense",
    ]
    lowered = lower(graph, PrecisionConfig(input=FixedType.parse(str(samples["input_type"]))))
    np.testing.assert_array_equal(predict(lowered, samples["x"]), samples["keras_out"])


# ---------------------------------------------------------------------------------------
# geometry: same/valid padding, strides, 1D as height-1 2D
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "size, kernel, stride, padding, out, pads",
    [
        (9, 3, 2, "same", 5, (1, 1)),
        (8, 3, 2, "same", 4, (0, 1)),  # the extra row/column goes at the bottom/right
        (8, 4, 1, "same", 8, (1, 2)),
        (7, 2, 3, "same", 3, (0, 1)),
        (9, 3, 2, "valid", 4, (0, 0)),
        (8, 3, 3, "valid", 2, (0, 0)),
        (5, 5, 1, "valid", 1, (0, 0)),
    ],
)
def test_conv2d_geometry_is_tensorflows(tmp_path, size, kernel, stride, padding, out, pads):
    layers = [
        layer_entry(
            "Conv2D", conv("c", 3, [kernel, kernel], strides=[stride, stride], padding=padding)
        )
    ]
    graph = read(tmp_path, layers, {"c": conv_weights((kernel, kernel), 2, 3)}, (size, size, 2))
    node = graph.nodes[1]
    assert isinstance(node, ir.Conv)
    assert node.out_shape == (out, out, 3) and node.padding == (*pads, *pads)
    assert node.kernel == (kernel, kernel) and node.stride == (stride, stride)


def test_conv1d_is_a_height_one_conv(tmp_path):
    kernel = RNG.normal(size=(5, 3, 4))
    layers = [
        layer_entry("Conv1D", conv("c", 4, [5], strides=[2], padding="same")),
        layer_entry(
            "MaxPooling1D",
            {
                "name": "p",
                "pool_size": [2],
                "strides": None,
                "padding": "valid",
                "data_format": "channels_last",
            },
        ),
        layer_entry("Conv1D", conv("k", 2, [3], padding="causal", use_bias=False)),
    ]
    graph = read(
        tmp_path,
        layers,
        {
            "c": {"kernel": kernel, "bias": np.zeros(4)},
            "p": {},
            "k": {"kernel": RNG.normal(size=(3, 4, 2))},
        },
        (21, 3),
    )
    c, p, k = graph.nodes[1:]
    assert c.in_shape == (21, 3) and c.out_shape == (11, 4) and c.op == "conv1d"
    assert c.kernel == (1, 5) and c.stride == (1, 2) and c.padding == (0, 0, 2, 2)
    np.testing.assert_array_equal(c.weights.values, kernel.astype(np.float32).reshape(1, 5, 3, 4))
    assert p.op == "maxpool1d" and p.pool == (1, 2) and p.stride == (1, 2) and p.out_shape == (5, 4)
    assert k.padding == (0, 0, 2, 0) and k.out_shape == (5, 2) and k.bias is None


def test_pools_global_pools_and_flatten(tmp_path):
    layers = [
        layer_entry(
            "AveragePooling2D",
            {"name": "a", "pool_size": [3, 3], "strides": [2, 2], "padding": "same"},
        ),
        layer_entry(
            "GlobalMaxPooling2D", {"name": "g", "data_format": "channels_last", "keepdims": False}
        ),
    ]
    graph = read(tmp_path, layers, {}, (9, 8, 2))
    a, g, flat = graph.nodes[1:]
    assert a.kind is ir.PoolKind.AVG and a.out_shape == (5, 4, 2) and a.padding == (1, 1, 0, 1)
    assert g.kind is ir.PoolKind.MAX and g.pool == (5, 4) and g.out_shape == (1, 1, 2)
    assert isinstance(flat, ir.Flatten) and flat.out_shape == (2,)


def test_dense_on_a_feature_map_is_a_1x1_conv(tmp_path):
    layers = [
        layer_entry("Dense", {"name": "d", "units": 5, "activation": "relu", "use_bias": False})
    ]
    graph = read(tmp_path, layers, {"d": {"kernel": RNG.normal(size=(2, 5))}}, (4, 4, 2))
    node = graph.nodes[1]
    assert isinstance(node, ir.Conv) and node.kernel == (1, 1) and node.out_shape == (4, 4, 5)
    assert node.activation == ir.RELU and node.weights.shape == (1, 1, 2, 5)


# ---------------------------------------------------------------------------------------
# layer mapping
# ---------------------------------------------------------------------------------------
def _mlp_layers(last_activation="linear"):
    return [
        layer_entry(
            "BatchNormalization",
            {"name": "bn", "axis": [1], "epsilon": 0.001, "center": True, "scale": True},
        ),
        layer_entry(
            "QDense",
            {
                "name": "d1",
                "units": 6,
                "activation": "quantized_relu(4,1)",
                "use_bias": True,
                "kernel_quantizer": "quantized_bits(6,0,alpha=1)",
                "bias_quantizer": {
                    "class_name": "quantized_bits",
                    "config": {"bits": 8, "integer": 2, "alpha": 1},
                },
            },
            module="qkeras.qlayers",
        ),
        layer_entry("Dropout", {"name": "drop", "rate": 0.5}),
        layer_entry("Activation", {"name": "lin", "activation": "linear"}),
        layer_entry(
            "Dense", {"name": "d2", "units": 3, "activation": last_activation, "use_bias": True}
        ),
    ]


def _mlp_weights():
    return {
        "bn": {
            "gamma": RNG.uniform(0.5, 1.5, 5),
            "beta": RNG.normal(size=5),
            "moving_mean": RNG.normal(size=5),
            "moving_variance": RNG.uniform(0.5, 2, 5),
        },
        "d1": {"kernel": RNG.normal(size=(5, 6)), "bias": RNG.normal(size=6)},
        "drop": {},
        "lin": {},
        "d2": {"kernel": RNG.normal(size=(6, 3)), "bias": RNG.normal(size=3)},
    }


def test_layers_map_to_nodes(tmp_path):
    weights = _mlp_weights()
    graph = read(tmp_path, _mlp_layers("softmax"), weights, (5,))
    assert [n.op for n in graph.nodes] == [
        "input",
        "scale_shift",
        "dense",
        "dense",
    ]  # dropout, linear gone
    assert graph.softmax and graph.nodes[-1].activation.is_linear
    bn, d1, d2 = graph.nodes[1:]
    p = weights["bn"]
    scale = p["gamma"].astype(np.float32) / np.sqrt(
        p["moving_variance"].astype(np.float32).astype(np.float64) + 0.001
    )
    np.testing.assert_allclose(bn.scale.values, scale, rtol=1e-12)
    np.testing.assert_allclose(
        bn.shift.values,
        p["beta"].astype(np.float32) - p["moving_mean"].astype(np.float32) * scale,
        rtol=1e-12,
    )
    assert d1.weights.quantizer == QuantizedBits(6, 0, alpha=1.0)
    assert d1.bias.quantizer == QuantizedBits(8, 2, alpha=1.0)
    assert d1.out_quantizer == QuantizedRelu(4, 1) and d2.weights.quantizer is None


def test_json_plus_weights_equals_full_h5(tmp_path):
    weights = _mlp_weights()
    a = lower(read(tmp_path, _mlp_layers(), weights, (5,), full=True))
    b = lower(read(tmp_path, _mlp_layers(), weights, (5,), full=False))
    from tests.models import graph_signature

    assert graph_signature(a) == graph_signature(b)


def test_batchnorm_without_center_and_scale(tmp_path):
    layers = [
        layer_entry(
            "BatchNormalization",
            {"name": "bn", "axis": -1, "epsilon": 0.5, "center": False, "scale": False},
        )
    ]
    graph = read(
        tmp_path,
        layers,
        {"bn": {"moving_mean": np.array([1.0, 2.0]), "moving_variance": np.array([1.5, 3.5])}},
        (3, 2),
    )
    np.testing.assert_allclose(graph.nodes[1].scale.values, [0.5**0.5, 0.5])
    np.testing.assert_allclose(graph.nodes[1].shift.values, [-(0.5**0.5), -1.0])


def test_relu_layers_and_qactivation(tmp_path):
    layers = [
        layer_entry(
            "ReLU", {"name": "r6", "max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}
        ),
        layer_entry("Activation", {"name": "r", "activation": "relu"}),
        layer_entry(
            "QActivation",
            {"name": "q", "activation": "quantized_bits(6,2,alpha=1)"},
            module="qkeras.qlayers",
        ),
        layer_entry(
            "QActivation", {"name": "h", "activation": "hard_tanh"}, module="qkeras.qlayers"
        ),
    ]
    r6, r, q, h = read(tmp_path, layers, {}, (4,)).nodes[1:]
    assert r6.activation == ir.Clamp(0.0, 6.0) and r.activation == ir.RELU
    assert q.out_quantizer == QuantizedBits(6, 2, alpha=1.0) and h.activation == ir.Clamp(-1.0, 1.0)


def test_sequential_layouts_of_old_keras(tmp_path):
    weights = {"c": conv_weights((3, 3), 2, 3)}
    entries = [
        {
            "class_name": "Conv2D",
            "config": {**conv("c", 3, [3, 3]), "batch_input_shape": [None, 9, 9, 2]},
        }
    ]
    write_weights_h5(tmp_path / "w.h5", weights)
    # Keras 2.0: bare list, no module keys, input shape on the first layer
    (tmp_path / "a.json").write_text(json.dumps({"class_name": "Sequential", "config": entries}))
    # Keras 2.2: {"name", "layers"} without InputLayer
    (tmp_path / "b.json").write_text(
        json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": entries}})
    )
    # input shape only in build_config (Keras 2.13+ without InputLayer)
    built = [
        {
            "class_name": "Conv2D",
            "config": conv("c", 3, [3, 3]),
            "build_config": {"input_shape": [None, 9, 9, 2]},
        }
    ]
    (tmp_path / "c.json").write_text(
        json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": built}})
    )
    graphs = [read_model(tmp_path / f"{n}.json", tmp_path / "w.h5") for n in "abc"]
    for graph in graphs:
        assert (
            graph.input.name == "c_input"
            and graph.input_shape == (9, 9, 2)
            and graph.output_shape == (7, 7, 3)
        )


def _functional(layers, input_name="inp", keras3=False):
    entries = [
        {
            "class_name": "InputLayer",
            "name": input_name,
            "config": {"name": input_name, "batch_input_shape": [None, 6]},
            "inbound_nodes": [],
        }
    ]
    previous = input_name
    for name, class_name, config, inputs in layers:
        sources = inputs or [previous]
        if keras3:
            node = {
                "args": [
                    [
                        {"class_name": "__keras_tensor__", "config": {"keras_history": [s, 0, 0]}}
                        for s in sources
                    ]
                ]
                if len(sources) > 1
                else [
                    {
                        "class_name": "__keras_tensor__",
                        "config": {"keras_history": [sources[0], 0, 0]},
                    }
                ],
                "kwargs": {},
            }
        else:
            node = [[s, 0, 0, {}] for s in sources]
        entries.append(
            {
                "class_name": class_name,
                "name": name,
                "config": {"name": name, **config},
                "inbound_nodes": [node],
            }
        )
        previous = name
    return {
        "class_name": "Functional",
        "config": {
            "name": "f",
            "layers": entries,
            "input_layers": [[input_name, 0, 0]],
            "output_layers": [[previous, 0, 0]],
        },
    }


@pytest.mark.parametrize("keras3", [False, True])
def test_functional_linear_chain(tmp_path, keras3):
    dense = {"units": 4, "activation": "relu", "use_bias": True}
    config = _functional(
        [("d1", "Dense", dense, None), ("d2", "Dense", {**dense, "activation": "softmax"}, None)],
        keras3=keras3,
    )
    (tmp_path / "f.json").write_text(json.dumps(config))
    weights = write_weights_h5(
        tmp_path / "w.h5",
        {
            "d1": {"kernel": np.ones((6, 4)), "bias": np.zeros(4)},
            "d2": {"kernel": np.ones((4, 4)), "bias": np.zeros(4)},
        },
    )
    graph = read_model(tmp_path / "f.json", weights)
    assert [n.name for n in graph.nodes] == ["inp", "d1", "d2"] and graph.softmax


# ---------------------------------------------------------------------------------------
# rejections
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entry, message",
    [
        (
            layer_entry("Lambda", {"name": "lam", "function": "4wEAAAAAAAAA"}),
            "layer 'lam' \\(Lambda\\).*never runs",
        ),
        (layer_entry("TFOpLambda", {"name": "tf.nn.relu", "function": "nn.relu"}), "TFOpLambda"),
        (
            layer_entry("MyCustomLayer", {"name": "custom"}),
            "'MyCustomLayer' is not supported.*Supported layers: InputLayer",
        ),
        (  # a Keras 3 operation: the supported operations only, not every layer
            layer_entry("ops.Relu6", {"name": "relu6"}),
            "^(?!.*InputLayer).*operation on a tensor.*Supported operations: ops.Add, ops.Sub",
        ),
        (
            layer_entry("Conv2D", conv("c", 2, [3, 3], data_format="channels_first")),
            "channels_first.*channels_last only",
        ),
        (
            layer_entry("Conv2D", conv("c", 2, [3, 3], dilation_rate=[2, 2], strides=2)),
            "dilation_rate=\\[2, 2\\] with strides=\\[2, 2\\] is not supported",
        ),
        (
            layer_entry(
                "DepthwiseConv2D",
                {"name": "dw", "kernel_size": [3, 3], "dilation_rate": 2, "strides": [1, 2]},
            ),
            "layer 'dw'.*dilation_rate=\\[2, 2\\] with strides=\\[1, 2\\] is not supported",
        ),
        (
            layer_entry("SeparableConv2D", {"name": "sep", "kernel_size": 3, "padding": "causal"}),
            "layer 'sep'.*padding='causal' is not supported",
        ),
        (layer_entry("PruneLowMagnitude", {"name": "prune_low_magnitude_c"}), "strip_pruning"),
        (
            layer_entry("Conv2D", conv("c", 2, [3, 3], activation="log_softmax")),
            "activation: 'log_softmax' is not supported.*relu",
        ),
        (
            layer_entry("Conv2D", conv("c", 2, [3, 3], activation="quantized_ulaw(4)")),
            "quantized_ulaw",
        ),
        (
            layer_entry("QActivation", {"name": "b", "activation": "quantized_po2(4)"}),
            "layer 'b'.*cannot be used as an activation",
        ),
        (
            layer_entry("ReLU", {"name": "leaky", "negative_slope": -0.1, "threshold": 0.0}),
            "negative_slope",
        ),
        (layer_entry("BatchNormalization", {"name": "bn", "axis": [1]}), "axis=\\[1\\].*last"),
        (
            layer_entry("Activation", {"name": "sm", "activation": "softmax"}),
            "softmax is only supported as the last layer",
        ),
        (
            layer_entry(
                "QBatchNormalization", {"name": "qbn", "gamma_quantizer": "quantized_ulaw(3)"}
            ),
            "quantized_ulaw",
        ),
        (
            layer_entry(
                "QConv2D", conv("q", 2, [3, 3], kernel_quantizer="quantized_bits(4,0,alpha='auto')")
            ),
            "alpha='auto'",
        ),
    ],
)
def test_unsupported_layers_are_named(tmp_path, entry, message):
    layers = [entry, layer_entry("Flatten", {"name": "flat"})]
    with pytest.raises(UnsupportedError, match=message):
        read(tmp_path, layers, {}, (9, 9, 2))


def test_branching_functional_graphs_are_read_as_dags(tmp_path):
    """Keras 2 (lists) and Keras 3 (``__keras_tensor__`` dicts) inbound nodes: a fork at
    the input and a join at ``add``. The end-to-end checks are in tests/rtlgen/test_graphs.py."""
    dense = {"units": 6, "activation": "linear", "use_bias": True}
    weights = write_weights_h5(
        tmp_path / "w.h5",
        {"a": {"kernel": np.ones((6, 6)), "bias": np.zeros(6)},
         "b": {"kernel": np.eye(6), "bias": np.ones(6)}},
    )
    for keras3 in (False, True):
        (tmp_path / "m.json").write_text(
            json.dumps(
                _functional(
                    [
                        ("a", "Dense", dense, None),
                        ("b", "Dense", dense, ["inp"]),
                        ("add", "Add", {}, ["a", "b"]),
                    ],
                    keras3=keras3,
                )
            )
        )
        graph = read_model(tmp_path / "m.json", weights)
        assert [n.name for n in graph.nodes] == ["inp", "a", "b", "add"]
        assert graph.node("add").inputs == ("a", "b")
        assert graph.node("b").inputs == ("inp",) and graph.outputs == ("add",)


def test_shared_layers_cycles_and_stray_layers_are_refused(tmp_path):
    dense = {"units": 6, "activation": "linear", "use_bias": True}
    weights = write_weights_h5(tmp_path / "w.h5", {"a": {"kernel": np.ones((6, 6))}})
    shared = _functional([("a", "Dense", dense, None)])
    entry = shared["config"]["layers"][1]
    entry["inbound_nodes"] = entry["inbound_nodes"] * 2
    stray = _functional([("a", "Dense", dense, None), ("b", "Dense", dense, ["inp"])])
    stray["config"]["output_layers"] = [["a", 0, 0]]
    cycle = _functional([("a", "Dense", dense, ["b"]), ("b", "Dense", dense, ["a"])])
    for config, message in [
        (shared, "called 2 times"),
        (stray, "do not lead to a model output"),
        (cycle, "cycle through layer"),
    ]:
        (tmp_path / "m.json").write_text(json.dumps(config))
        with pytest.raises((UnsupportedError, ModelFileError), match=message):
            read_model(tmp_path / "m.json", weights)


@pytest.mark.parametrize("keras3", [False, True])
def test_a_tensor_passed_as_a_keyword_argument_is_refused_naming_the_layer(tmp_path, keras3):
    """``x + y`` of two Keras tensors is a TFOpLambda whose ``y`` is a keyword argument, an
    RNN's ``initial_state`` too: read as positional inputs only, the layer making ``y`` fed
    no output and the refusal said so, naming neither the op nor the argument. Now: an
    unsupported layer is named as such, a supported one with the keyword and its source."""
    dense = {"units": 6, "activation": "linear", "use_bias": True}
    weights = write_weights_h5(
        tmp_path / "w.h5", {n: {"kernel": np.ones((6, 6))} for n in ("a", "b", "c")}
    )
    config = _functional(
        [("a", "Dense", dense, None), ("b", "Dense", dense, ["inp"]), ("c", "Dense", dense, ["a"])],
        keras3=keras3,
    )
    entry = config["config"]["layers"][3]  # c reads a, and b as a keyword argument
    if keras3:
        history = {"class_name": "__keras_tensor__", "config": {"keras_history": ["b", 0, 0]}}
        entry["inbound_nodes"][0]["kwargs"] = {"y": history}
    else:
        entry["inbound_nodes"][0][0][3] = {"y": ["b", 0, 0], "name": None}
    (tmp_path / "m.json").write_text(json.dumps(config))
    with pytest.raises(
        UnsupportedError,
        match=r"^layer 'c' \(Dense\): the tensor of layer 'b' passed as keyword argument 'y' is "
        "not supported",
    ):
        read_model(tmp_path / "m.json", weights)
    entry["class_name"] = "TFOpLambda"
    (tmp_path / "m.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedError, match=r"^layer 'c' \(TFOpLambda\): layer type 'TFOpLambda'"):
        read_model(tmp_path / "m.json", weights)


def test_keyword_tensors_of_tf_keras_models_are_refused_in_one_line(tmp_path):
    """As tf.keras 2.15 saves them (.h5 and .keras): ``Dense(h + x[:, :4])`` (a TFOpLambda,
    its operand a keyword argument; its node a single reference) and a seq2seq decoder
    ``LSTM(initial_state=[h, c])`` of an encoder's states (tf.keras 2.15 lists them with the
    inputs: the encoder's second output is named)."""
    tf = pytest.importorskip("tensorflow")
    layers = tf.keras.layers
    x = layers.Input((4,))
    out = layers.Dense(2)(layers.Dense(4)(x) + x[:, :4])
    added = tf.keras.Model(x, out)
    enc_in, dec_in = layers.Input((5, 3)), layers.Input((4, 2))
    _, h, c = layers.LSTM(4, return_state=True, name="encoder")(enc_in)
    decoded = layers.LSTM(4, name="decoder")(dec_in, initial_state=[h, c])
    seq2seq = tf.keras.Model([enc_in, dec_in], layers.Dense(1)(decoded))
    for model, message in [
        (added, r"^layer 'tf.__operators__.add' \(TFOpLambda\): layer type 'TFOpLambda'"),
        (
            seq2seq,
            r"^layer 'decoder' \(LSTM\): the output 1 of call 0 of layer 'encoder' is used: "
            r".*one output.*return_state",
        ),
    ]:
        for suffix in (".h5", ".keras"):
            path = tmp_path / f"{model.name}{suffix}"
            model.save(path)
            with pytest.raises(UnsupportedError, match=message):
                read_model(path)


def test_unknown_input_dimension_is_rejected(tmp_path):
    config = sequential_config([layer_entry("Flatten", {"name": "f"})])
    config["config"]["layers"][0]["config"]["batch_input_shape"] = [None, None, 3]
    path = write_full_h5(tmp_path / "m.h5", config, {"f": {}})
    with pytest.raises(UnsupportedError, match="unknown dimensions"):
        read_model(path)


# ---------------------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------------------
def test_truncated_h5(tmp_path):
    path, _ = write(tmp_path, _mlp_layers(), _mlp_weights(), (5,))
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.h5: not a readable HDF5 file"):
        read_model(cut)


def test_random_bytes(tmp_path):
    junk = np.random.default_rng(3).bytes(4096)
    (tmp_path / "junk.h5").write_bytes(junk)
    (tmp_path / "junk.json").write_bytes(junk)
    (tmp_path / "junk.keras").write_bytes(b"PK\x03\x04" + junk)
    with pytest.raises(ModelFileError, match="junk.h5: not an HDF5 file"):
        read_model(tmp_path / "junk.h5")
    with pytest.raises(ModelFileError, match="junk.json: not valid JSON"):
        read_model(tmp_path / "junk.json", tmp_path / "junk.h5")
    with pytest.raises(ModelFileError, match="junk.keras: not a readable .keras \\(zip\\) archive"):
        read_model(tmp_path / "junk.keras")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2, 3]", "expected a JSON object"),
        ('{"class_name": "Sequential"}', "not a Keras model config"),
        (
            '{"class_name": "Sequential", "config": {"name": "s"}}',
            "Sequential config has no list of layers",
        ),
        ('{"class_name": "Sequential", "config": {"layers": [42]}}', "layer entry 0 is not"),
        ('{"class_name": "Graph", "config": {}}', "model class 'Graph' is not supported"),
        ("[" * 100000, "not valid JSON"),
        (
            '{"class_name": "Sequential", "config": {"layers": [{"class_name": "Conv2D", "config": {"name": "c", "filters": "x", '
            '"kernel_size": 3, "batch_input_shape": [null, 5, 5, 1]}}]}}',
            "'filters' = 'x' is not a positive integer",
        ),
    ],
)
def test_malformed_json(tmp_path, text, message):
    (tmp_path / "m.json").write_text(text)
    write_weights_h5(tmp_path / "w.h5", {"c": conv_weights((3, 3), 1, 2)})
    with pytest.raises(RtlgenError, match=message):
        read_model(tmp_path / "m.json", tmp_path / "w.h5")


def test_json_with_unknown_layer(tmp_path):
    layers = [layer_entry("FancyAttention", {"name": "att"})]
    with pytest.raises(
        UnsupportedError,
        match="layer 'att' \\(FancyAttention\\): layer type 'FancyAttention' is not supported",
    ):
        read(tmp_path, layers, {}, (4,), full=False)


def test_missing_weights(tmp_path):
    weights = _mlp_weights()
    del weights["d1"]
    with pytest.raises(ModelFileError, match="no weights for layer 'd1' \\(QDense\\)"):
        read(tmp_path, _mlp_layers(), weights, (5,), full=False)
    weights = _mlp_weights()
    del weights["d2"]["bias"]
    with pytest.raises(
        ModelFileError, match="layer 'd2' \\(Dense\\) has no weight\\(s\\) bias \\(found: kernel\\)"
    ):
        read(tmp_path, _mlp_layers(), weights, (5,))


def test_weight_shape_mismatch(tmp_path):
    weights = _mlp_weights()
    weights["d1"]["kernel"] = RNG.normal(size=(5, 7))
    with pytest.raises(
        ModelFileError,
        match="layer 'd1' \\(QDense\\): weight 'kernel' has shape \\(5, 7\\) in the weights file, but the config implies \\(5, 6\\)",
    ):
        read(tmp_path, _mlp_layers(), weights, (5,))


def test_weights_only_file_as_model_and_json_without_weights(tmp_path):
    json_path, weights = write(tmp_path, _mlp_layers(), _mlp_weights(), (5,), full=False)
    with pytest.raises(ModelFileError, match="holds only weights"):
        read_model(weights)
    with pytest.raises(ModelFileError, match="needs its weights: pass the weights .h5 \\(--weights"):
        read_model(json_path)
    with pytest.raises(ModelFileError, match="nothing.h5: no such file"):
        read_model(tmp_path / "nothing.h5")


def test_hostile_h5_content(tmp_path):
    config = sequential_config(
        [layer_entry("Dense", {"name": "d", "units": 2, "use_bias": False})], (3,)
    )
    path = tmp_path / "ext.h5"
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other.create_dataset("k", data=np.ones((3, 2)))
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"d"]
        group = root.create_group("d")
        group.attrs["weight_names"] = [b"d/kernel:0"]
        group.create_group("d")["kernel:0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "k")
    with pytest.raises(ModelFileError, match="is an ExternalLink to .*other.h5'; a model file may only hold"):
        read_model(path)
    with h5py.File(path, "a") as f:
        del f["model_weights/d/d/kernel:0"]
        f["model_weights/d/d"].create_dataset("kernel:0", data=np.array([b"abc"] * 6).reshape(3, 2))
    with pytest.raises(ModelFileError, match="expected numbers"):
        read_model(path)
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = "{not json"
    with pytest.raises(ModelFileError, match="ext.h5: not valid JSON"):
        read_model(path)


def test_keras_archive_errors(tmp_path):
    archive = tmp_path / "m.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("metadata.json", "{}")
    with pytest.raises(ModelFileError, match="without config.json"):
        read_model(archive)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(
            "config.json",
            json.dumps(
                sequential_config(
                    [layer_entry("Dense", {"name": "d", "units": 3, "use_bias": True})], (4,)
                )
            ),
        )
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ModelFileError, match="model.weights.h5.*not a readable HDF5 file"):
        read_model(archive)


def test_in_memory_api_errors():
    with pytest.raises(RtlgenError, match="cannot read a int"):
        read_model(42)
    with pytest.raises(RtlgenError, match="needs weights"):
        read_model({"class_name": "Sequential", "config": []})


def test_qaverage_pooling_with_exact_and_inexact_average_quantizer(tmp_path):
    def q_avg(pool, quantizer):
        return layer_entry(
            "QAveragePooling2D",
            {
                "name": "qa",
                "pool_size": [pool, pool],
                "strides": None,
                "padding": "valid",
                "average_quantizer": quantizer,
                "activation": "quantized_relu(4,2)",
            },
            module="qkeras.qpooling",
        )

    graph = read(tmp_path, [q_avg(2, "quantized_bits(8,0,alpha=1)")], {}, (6, 6, 2))
    pool, act = graph.nodes[1:]
    assert pool.kind is ir.PoolKind.AVG and pool.out_shape == (3, 3, 2)
    assert act.out_quantizer == QuantizedRelu(4, 2)
    with pytest.raises(UnsupportedError, match="does not represent 1/9 exactly"):
        read(tmp_path, [q_avg(3, "quantized_bits(8,0,alpha=1)")], {}, (6, 6, 2))


def test_qdense_batchnorm_is_folded_like_qkeras(tmp_path):
    """QDenseBatchnorm (qkeras > 0.9.0): kernel' = kernel * gamma * rsqrt(var + eps),
    bias' = (bias - mean) * gamma * rsqrt(var + eps) + beta, in float32, then quantized."""
    entry = layer_entry(
        "QDenseBatchnorm",
        {
            "name": "dbn",
            "units": 3,
            "activation": "linear",
            "use_bias": True,
            "axis": -1,
            "epsilon": 0.01,
            "center": True,
            "scale": True,
            "kernel_quantizer": "quantized_bits(8,2,alpha=1)",
            "bias_quantizer": None,
        },
        module="qkeras.qdense_batchnorm",
    )
    p = {
        "kernel": RNG.normal(size=(4, 3)),
        "bias": RNG.normal(size=3),
        "gamma": RNG.uniform(0.5, 2, 3),
        "beta": RNG.normal(size=3),
        "moving_mean": RNG.normal(size=3),
        "moving_variance": RNG.uniform(0.5, 2, 3),
        "iteration": np.array(7.0),
    }
    node = read(tmp_path, [entry], {"dbn": p}, (4,)).nodes[1]
    f = {k: np.float32(v) if np.ndim(v) == 0 else np.asarray(v, np.float32) for k, v in p.items()}
    inv = np.float32(1) / np.sqrt(f["moving_variance"] + np.float32(0.01)) * f["gamma"]
    np.testing.assert_allclose(node.weights.values, inv * f["kernel"], rtol=1e-6)
    np.testing.assert_allclose(
        node.bias.values, inv * (f["bias"] - f["moving_mean"]) + f["beta"], rtol=1e-6
    )
    assert node.weights.quantizer == QuantizedBits(8, 2, alpha=1.0) and node.bias.quantizer is None


def test_global_pools_1d_keepdims_and_reshape(tmp_path):
    layers = [
        layer_entry(
            "GlobalAveragePooling1D",
            {"name": "g", "data_format": "channels_last", "keepdims": True},
        ),
        layer_entry("Reshape", {"name": "same", "target_shape": [1, 3]}),
        layer_entry("Reshape", {"name": "flat", "target_shape": [-1]}),
        layer_entry("Flatten", {"name": "noop"}),
    ]
    graph = read(tmp_path, layers, {}, (10, 3))
    g, flat = graph.nodes[1:]
    assert g.pool == (1, 10) and g.out_shape == (1, 3) and g.kind is ir.PoolKind.AVG
    assert isinstance(flat, ir.Flatten) and flat.name == "flat" and graph.output_shape == (3,)


def test_keras3_input_layer_batch_shape_and_qbatchnorm_without_quantizers(tmp_path):
    config = sequential_config(
        [
            layer_entry(
                "QBatchNormalization",
                {
                    "name": "qbn",
                    "axis": -1,
                    "epsilon": 0.001,
                    "gamma_quantizer": None,
                    "beta_quantizer": None,
                    "mean_quantizer": None,
                    "variance_quantizer": None,
                },
            )
        ]
    )
    config["config"]["layers"].insert(
        0, layer_entry("InputLayer", {"batch_shape": [None, 4, 2], "name": "in"})
    )
    weights = {
        "qbn": {
            "gamma": np.ones(2),
            "beta": np.zeros(2),
            "moving_mean": np.array([1.0, -1.0]),
            "moving_variance": np.array([3.999, 0.999]),
        }
    }
    graph = read_model(write_full_h5(tmp_path / "k3.h5", config, weights))
    assert graph.input_shape == (4, 2) and graph.input.name == "in"
    np.testing.assert_allclose(graph.nodes[1].scale.values, [0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(graph.nodes[1].shift.values, [-0.5, 1.0], rtol=1e-6)


def test_chunked_name_attributes(tmp_path):
    """Keras splits long attribute lists into ``layer_names0``, ``layer_names1``, ..."""
    config = sequential_config(
        [
            layer_entry("Dense", {"name": "d1", "units": 2, "use_bias": True}),
            layer_entry("Dense", {"name": "d2", "units": 2, "use_bias": False}),
        ],
        (3,),
    )
    (tmp_path / "m.json").write_text(json.dumps(config))
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.attrs["layer_names0"] = np.array([b"d1"])
        f.attrs["layer_names1"] = np.array([b"d2"])
        d1 = f.create_group("d1")
        d1.attrs["weight_names0"] = np.array([b"d1/kernel:0"])
        d1.attrs["weight_names1"] = np.array([b"d1/bias:0"])
        d1.create_dataset("d1/kernel:0", data=np.ones((3, 2), np.float32))
        d1.create_dataset("d1/bias:0", data=np.full(2, 0.5, np.float32))
        d2 = f.create_group("d2")
        d2.attrs["weight_names"] = np.array([b"d2/kernel:0"])
        d2.create_dataset("d2/kernel:0", data=np.eye(2, dtype=np.float32))
    graph = read_model(tmp_path / "m.json", tmp_path / "w.h5")
    np.testing.assert_array_equal(graph.nodes[1].bias.values, [0.5, 0.5])
    assert graph.nodes[2].bias is None
