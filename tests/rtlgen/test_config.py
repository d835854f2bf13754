"""YAML precision configs -> PrecisionConfig."""

from __future__ import annotations

import pytest

from rtlgen import ir
from rtlgen.config import config_from_dict, load_config
from rtlgen.passes import DEFAULT_PRECISION, LayerPrecision
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding

FULL = """
input: ap_fixed<12,4>
default: {weight_width: 10, result_frac: 8, bn_width: 14}
rounding: rnd
overflow: wrap
layers:
  conv1: {weight: 'ap_fixed<8,2>', bias: 'fixed<12,4>', result: "ap_ufixed<16,6>"}
  dense:
    result: ap_fixed<18,8,AP_RND_CONV,AP_SAT>
"""


def test_full_config(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text(FULL)
    config = load_config(path)
    assert config.input == FixedType(12, 8)
    assert (config.weight_width, config.result_frac, config.bn_width) == (10, 8, 14)
    assert config.rounding is Rounding.HALF_UP and config.overflow is Overflow.WRAP
    assert dict(config.layers) == {
        "conv1": LayerPrecision(FixedType(8, 6), FixedType(12, 8), FixedType(16, 10, signed=False)),
        "dense": LayerPrecision(None, None, FixedType(18, 10)),
    }
    node = ir.Dense("dense", (3,), (2,), weights=ir.FloatTensor(None), source="dense+relu")
    assert config.for_layer(node).result == FixedType(18, 10)


def test_empty_file_and_partial_config_keep_defaults(tmp_path):
    (tmp_path / "empty.yml").write_text("")
    assert load_config(tmp_path / "empty.yml") == DEFAULT_PRECISION
    partial = config_from_dict({"rounding": "trn", "default": {"weight_width": 8}})
    assert partial.rounding is Rounding.TRUNCATE and partial.weight_width == 8
    assert (
        partial.bn_width == DEFAULT_PRECISION.bn_width and partial.input == DEFAULT_PRECISION.input
    )


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"input_type": "ap_fixed<8,2>"},
            "unknown key 'input_type' \\(accepted: input, inputs, default, rounding, overflow, layers\\)",
        ),
        ({"inputs": "ap_fixed<8,2>"}, "'inputs' must map input names to precisions"),
        ({"inputs": {"a": "fixd<8,2>"}}, "inputs.a: cannot parse precision"),
        (
            {"default": {"weight_bits": 8}},
            "default: unknown key 'weight_bits' \\(accepted: weight_width, bn_width, result_frac, result_int_bits\\)",
        ),
        (
            {"layers": {"c1": {"weights": "ap_fixed<8,2>"}}},
            "layers.c1: unknown key 'weights' \\(accepted: weight, bias, result\\)",
        ),
        ({"input": "float32"}, "input: cannot parse precision 'float32'"),
        ({"input": 16}, "input: expected a precision"),
        ({"rounding": "nearest"}, "rounding: 'nearest' is not one of"),
        ({"overflow": "clip"}, "overflow: 'clip' is not one of"),
        ({"default": {"weight_width": 100}}, "weight_width = 100"),
        ({"default": {"result_frac": "ten"}}, "result_frac: expected an integer"),
        ({"layers": ["c1"]}, "'layers' must map layer names"),
        (["input"], "expected a mapping"),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(RtlgenError, match=message):
        config_from_dict(data)


def test_unquoted_precision_in_flow_mapping_gets_a_hint(tmp_path):
    (tmp_path / "p.yml").write_text("layers:\n  c1: {weight: ap_fixed<8,2>}\n")
    with pytest.raises(RtlgenError, match="unknown key '2>'.*quote precisions"):
        load_config(tmp_path / "p.yml")


def test_file_errors(tmp_path):
    with pytest.raises(RtlgenError, match="missing.yml does not exist"):
        load_config(tmp_path / "missing.yml")
    (tmp_path / "bad.yml").write_text("input: [unclosed\n")
    with pytest.raises(RtlgenError, match="invalid YAML at line"):
        load_config(tmp_path / "bad.yml")
