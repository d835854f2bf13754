"""Public-model file shapes of issue 20 (no TensorFlow needed):

- QKeras releases after 0.9.0 write new quantizer options at their defaults
  (``post_training_scale: null`` ...): accepted when the value changes nothing, refused by name
  otherwise;
- model JSON files that are a JSON string holding the model JSON (the QKeras zoo's
  double-encoded files) are decoded once, under the same size and nesting limits.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rtlgen import cli
from rtlgen.frontend import Limits, read_model
from rtlgen.passes import lower
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.quantizers import Binary, QuantizedBits, parse_quantizer
from rtlgen.quant.reference import predict
from tests.models import (
    exact_inputs,
    graph_signature,
    layer_entry,
    sequential_config,
    write_full_h5,
    write_weights_h5,
)

RNG = np.random.default_rng(20)

#: what QKeras releases after 0.9.0 add to quantized_bits's and binary's get_config()
NEW_BITS_OPTIONS = {
    "elements_per_scale": None,
    "min_po2_exponent": None,
    "max_po2_exponent": None,
    "post_training_scale": None,
}
NEW_BINARY_OPTIONS = {"scale_axis": None, **{k: None for k in list(NEW_BITS_OPTIONS)[:3]}}


def bits_config(bits, integer, new=True, **extra):
    """A serialized quantized_bits as the newer QKeras writes it (``new``) or as 0.9.0 does."""
    config = {
        "bits": bits,
        "integer": integer,
        "symmetric": 0,
        "alpha": 1,
        "keep_negative": True,
        "use_stochastic_rounding": False,
        "qnoise_factor": 1.0,
    }
    if new:
        config.update(NEW_BITS_OPTIONS)
    config.update(extra)
    return {"class_name": "quantized_bits", "config": config}


def qdense_layers(new=True, **extra):
    return [
        layer_entry(
            "QDense",
            {
                "name": "q1",
                "units": 7,
                "activation": "linear",
                "use_bias": True,
                "kernel_quantizer": bits_config(6, 0, new, **extra),
                "bias_quantizer": bits_config(8, 2, new),
            },
            module="qkeras.qlayers",
        ),
        layer_entry(
            "QActivation",
            {"name": "a1", "activation": bits_config(5, 2, new)},
            module="qkeras.qlayers",
        ),
        layer_entry(
            "QDense",
            {
                "name": "q2",
                "units": 3,
                "activation": "linear",
                "use_bias": True,
                "kernel_quantizer": bits_config(4, 0, new),
                "bias_quantizer": bits_config(4, 0, new),
            },
            module="qkeras.qlayers",
        ),
    ]


def qdense_weights():
    return {
        "q1": {"kernel": RNG.normal(size=(5, 7)), "bias": RNG.normal(size=7)},
        "a1": {},
        "q2": {"kernel": RNG.normal(size=(7, 3)), "bias": RNG.normal(size=3)},
    }


# ---------------------------------------------------------------------------------------
# newer QKeras options
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, expected",
    [
        (bits_config(6, 0), QuantizedBits(6, 0, alpha=1.0)),
        (bits_config(4, 1, symmetric=1), QuantizedBits(4, 1, True, alpha=1.0)),
        ("quantized_bits(6,0,alpha=1,post_training_scale=None)", QuantizedBits(6, 0, alpha=1.0)),
        (
            {"class_name": "binary", "config": {"use_01": False, "alpha": 1, **NEW_BINARY_OPTIONS}},
            Binary(False, 1.0),
        ),
        ("binary(alpha=1, scale_axis=None, min_po2_exponent=None)", Binary(False, 1.0)),
    ],
)
def test_new_options_at_their_defaults_change_nothing(spec, expected):
    assert parse_quantizer(spec, "layer 'x'") == expected


@pytest.mark.parametrize(
    "spec, option",
    [
        (bits_config(6, 0, post_training_scale=[0.5, 0.25]), "post_training_scale=[0.5, 0.25]"),
        (bits_config(6, 0, alpha="auto_po2", min_po2_exponent=-3), "min_po2_exponent=-3"),
        (bits_config(6, 0, max_po2_exponent=2), "max_po2_exponent=2"),
        (bits_config(6, 0, elements_per_scale=[2, 2]), "elements_per_scale=[2, 2]"),
        ("binary(alpha='auto_po2', scale_axis=1)", "scale_axis=1"),
        (
            bits_config(6, 0, post_training_scale=list(np.arange(400.0))),
            "post_training_scale=[0.0, 1.0, 2.0",
        ),
    ],
)
def test_new_options_that_change_the_output_are_refused_by_name(spec, option):
    with pytest.raises(UnsupportedError) as info:
        parse_quantizer(spec, "layer 'x'")
    message = str(info.value)
    assert re.match(rf"layer 'x': \w+: {re.escape(option)}.* is not supported", message)
    assert message.endswith("the default, which changes nothing)") and len(message) < 200


def test_unknown_options_are_still_refused():
    with pytest.raises(UnsupportedError, match="unknown option 'temperature'"):
        parse_quantizer(bits_config(6, 0, temperature=2.0), "layer 'x'")
    with pytest.raises(UnsupportedError, match="unknown option 'post_training_scale'"):
        parse_quantizer("quantized_relu(4, 0, post_training_scale=None)", "layer 'x'")


def test_a_model_with_the_new_options_is_the_same_network(tmp_path):
    weights = qdense_weights()
    new = write_full_h5(tmp_path / "new.h5", sequential_config(qdense_layers(True), (5,)), weights)
    old = write_full_h5(tmp_path / "old.h5", sequential_config(qdense_layers(False), (5,)), weights)
    graph_new, graph_old = lower(read_model(new)), lower(read_model(old))
    assert graph_signature(graph_new) == graph_signature(graph_old)
    x = exact_inputs((5,), 32, seed=3)
    np.testing.assert_array_equal(predict(graph_new, x), predict(graph_old, x))


def test_cli_names_the_layer_and_option_it_refuses(tmp_path, capsys):
    layers = qdense_layers(True, post_training_scale=[1.0] * 7)
    model = write_full_h5(tmp_path / "m.h5", sequential_config(layers, (5,)), qdense_weights())
    assert cli.run(["inspect", str(model)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "layer 'q1'" in lines[0] and "post_training_scale=[1.0" in lines[0]


# ---------------------------------------------------------------------------------------
# JSON files holding a JSON string
# ---------------------------------------------------------------------------------------
def _json_and_weights(tmp_path, encodings=2, config=None):
    weights = write_weights_h5(tmp_path / "w.h5", qdense_weights())
    text = config if config is not None else sequential_config(qdense_layers(False), (5,))
    for _ in range(encodings):
        text = json.dumps(text)
    path = tmp_path / "m.json"
    path.write_text(text)
    return path, weights


@pytest.mark.parametrize("spaces", [False, True])
def test_a_json_string_holding_the_model_json_is_decoded(tmp_path, spaces):
    config = sequential_config(qdense_layers(False), (5,))
    plain, weights = _json_and_weights(tmp_path, 1, config)
    plain_graph = lower(read_model(plain, weights))
    inner = json.dumps(config, indent=2 if spaces else None)
    encoded = json.dumps(inner)
    (tmp_path / "zoo.json").write_text(f" \n{encoded}\n" if spaces else encoded)
    zoo_graph = lower(read_model(tmp_path / "zoo.json", weights))
    assert graph_signature(zoo_graph) == graph_signature(plain_graph)
    x = exact_inputs((5,), 16, seed=4)
    np.testing.assert_array_equal(predict(zoo_graph, x), predict(plain_graph, x))


def test_a_double_encoded_model_config_inside_an_h5_is_decoded(tmp_path):
    config = sequential_config(qdense_layers(False), (5,))
    weights = qdense_weights()
    plain = write_full_h5(tmp_path / "plain.h5", config, weights)
    double = write_full_h5(tmp_path / "double.h5", json.dumps(config), weights)  # type: ignore[arg-type]
    assert graph_signature(lower(read_model(double))) == graph_signature(lower(read_model(plain)))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            json.dumps(json.dumps(json.dumps({"class_name": "Sequential"}))),
            "expected a JSON object",
        ),
        (json.dumps("{not json"), "a JSON string that does not hold valid model JSON"),
        (json.dumps("[1, 2]"), "expected a JSON object"),
        (json.dumps("[" * 100000 + "]" * 100000), "nested"),
        (json.dumps('"hello"'), "expected a JSON object"),
    ],
)
def test_malformed_json_strings_are_one_line_errors(tmp_path, text, message):
    path, weights = _json_and_weights(tmp_path)
    path.write_text(text)
    with pytest.raises(ModelFileError, match=message):
        read_model(path, weights)


def test_json_strings_keep_the_size_and_nesting_limits(tmp_path):
    path, weights = _json_and_weights(tmp_path)
    size = path.stat().st_size
    with pytest.raises(ModelFileError, match="more than the limit"):
        read_model(path, weights, limits=Limits(max_config_bytes=size - 1))
    read_model(path, weights, limits=Limits(max_config_bytes=size))
    with pytest.raises(ModelFileError, match="nested more than 3 levels"):
        read_model(path, weights, limits=Limits(max_config_depth=3))


def test_cli_predicts_from_a_double_encoded_json(tmp_path):
    path, weights = _json_and_weights(tmp_path)
    x = exact_inputs((5,), 8, seed=5)
    np.save(tmp_path / "x.npy", x)
    args = ["predict", path, "-w", weights, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy"]
    assert cli.run([str(a) for a in args]) == 0
    expected = predict(lower(read_model(path, weights)), x)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    assert math.isfinite(float(np.abs(expected).sum()))
