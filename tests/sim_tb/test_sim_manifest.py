"""rtlgen.sim_tb.tb_manifest (manifest reading, beat packing) and tb_axis pause generators:
pure Python, no simulator."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given

from rtlgen.sim_tb.tb_axis import random_pauses
from rtlgen.sim_tb.tb_manifest import (
    ElementType,
    ManifestError,
    StreamSpec,
    check_vectors,
    load_manifest,
)

from . import dut
from .strategies import specs_and_samples


@given(specs_and_samples())
def test_pack_then_unpack_is_identity(spec_and_sample):
    spec, sample = spec_and_sample
    words = spec.pack(sample)
    assert len(words) == spec.beats_per_sample
    assert all(0 <= word < 1 << spec.tdata_width for word in words)
    np.testing.assert_array_equal([spec.unpack(word) for word in words], sample)


def test_pack_puts_element_i_at_bits_i_times_width():
    spec = StreamSpec(
        shape=(3,),
        beats_per_sample=1,
        elements_per_beat=3,
        element=ElementType(10, 0, True),
        tdata_width=30,
    )
    assert spec.pack(np.array([1, -1, -512])) == [1 | (0x3FF << 10) | (0x200 << 20)]
    assert spec.raw(-1) == "0x3ff"


def _write(tmp_path, manifest: dict):
    (tmp_path / "rtl").mkdir(exist_ok=True)
    (tmp_path / "rtl" / "chansum.v").write_text("module chansum; endmodule\n")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path / "manifest.json"


def test_manifest_of_the_test_design_loads(tmp_path):
    manifest = load_manifest(_write(tmp_path, dut.manifest()))
    assert manifest.top == "chansum" and manifest.rtl == ("rtl/chansum.v",)
    assert manifest.rtl_paths == (tmp_path.resolve() / "rtl" / "chansum.v",)
    assert manifest.input.shape == (4, 3) and manifest.output.classes == 2
    assert (manifest.latency_cycles, manifest.ii_cycles) == (5, 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(format_version=3), "format_version 3 is newer than this rtlgen reads"),
        (lambda m: m["input"].update(beats_per_sample=3), "3 beats x 3 elements, but shape"),
        (lambda m: m["output"].update(tdata_width=12), "tdata_width 12 != 2 elements x 10 bits"),
        (lambda m: m["output"].update(tuser_width=0, classes=2), "cannot hold 2 classes"),
        (lambda m: m.update(rtl=["rtl/missing.v"]), "missing.v not found"),
        (lambda m: m.pop("top"), "missing field top"),
        (lambda m: m["input"]["type"].pop("width"), "missing field input.type.width"),
    ],
)
def test_malformed_manifest_is_rejected_with_a_clear_message(tmp_path, change, message):
    contents = dut.manifest()
    change(contents)
    with pytest.raises(ManifestError, match=message):
        load_manifest(_write(tmp_path, contents))


def test_missing_manifest_is_rejected(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "manifest.json")


def test_vectors_must_fit_the_manifest(tmp_path):
    manifest = load_manifest(_write(tmp_path, dut.manifest()))
    x_int = dut.random_inputs(5, 0)
    y_int = dut.reference(x_int)
    check_vectors(manifest, x_int, y_int)
    with pytest.raises(ManifestError, match=r"y_int: shape \(5, 1, 2\)"):
        check_vectors(manifest, x_int, y_int[:, None, :])
    with pytest.raises(ManifestError, match="x_int has 4 samples and y_int 5"):
        check_vectors(manifest, x_int[:4], y_int)
    with pytest.raises(ManifestError, match=r"values in \[-128, 128\] do not fit"):
        check_vectors(manifest, np.where(x_int == x_int.max(), 128, x_int), y_int)
    with pytest.raises(ManifestError, match="integer numpy array"):
        check_vectors(manifest, x_int.astype(np.float64), y_int)


def test_pauses_are_reproducible_and_near_the_probability():
    first = list(itertools.islice(random_pauses(0.3, "5/in"), 10_000))
    assert first == list(itertools.islice(random_pauses(0.3, "5/in"), 10_000))
    assert first != list(itertools.islice(random_pauses(0.3, "5/out"), 10_000))
    assert 0.27 < sum(first) / len(first) < 0.33
    assert not any(itertools.islice(random_pauses(0.0), 1000))
    with pytest.raises(ValueError, match="must be in"):
        random_pauses(1.0)


# ------------------------------------------------------------------ several outputs
def _spec(shape, name, prefix, **extra):
    size = int(np.prod(shape))
    return StreamSpec(shape, 1, size, ElementType(8, 4, True, "fixed<8,4>"), 8 * size,
                      name=name, prefix=prefix, **extra)


def _two_output_manifest():
    from rtlgen.sim_tb.tb_manifest import Manifest, Totals

    first = _spec((4,), "cls", "m_axis", tuser_width=2, classes=4, latency_cycles=9, ii_cycles=1)
    second = _spec((2,), "output", "m1_axis", tuser_width=1, classes=2, latency_cycles=12,
                   ii_cycles=1)
    return Manifest(
        top="two_head", rtl=("rtl/two_head.v",), clock="clk", reset="rst",
        reset_active_high=True, input=_spec((6,), "", "", type_origin="default"),
        output=first, outputs=(first, second), latency_cycles=9, ii_cycles=1,
        totals=Totals.of(()),
    )


def test_a_manifest_with_several_outputs_round_trips():
    from rtlgen.sim_tb.tb_manifest import parse_manifest

    manifest = _two_output_manifest()
    raw = json.loads(manifest.to_json())
    assert raw["output"] == raw["outputs"][0]
    assert [o["prefix"] for o in raw["outputs"]] == ["m_axis", "m1_axis"]
    assert parse_manifest(raw) == manifest
    assert parse_manifest(raw).output_names == ("cls", "output")  # a keyword is a fine name


def test_output_must_be_the_first_of_outputs():
    import dataclasses

    from rtlgen.sim_tb.tb_manifest import parse_manifest

    manifest = _two_output_manifest()
    with pytest.raises(ValueError, match="outputs\\[0\\]"):
        dataclasses.replace(manifest, output=manifest.outputs[1])
    raw = json.loads(manifest.to_json())
    raw["output"] = raw["outputs"][1]
    with pytest.raises(ManifestError, match="output.prefix is 'm1_axis', expected 'm_axis'|not the same"):
        parse_manifest(raw)


def test_output_arrays_by_name_in_port_order():
    from rtlgen.sim_tb.tb_manifest import output_arrays

    manifest = _two_output_manifest()
    arrays = output_arrays(manifest, {"output": 2, "cls": 1})
    assert list(arrays.items()) == [("cls", 1), ("output", 2)]
    with pytest.raises(ManifestError, match="2 outputs \\(cls, output\\)"):
        output_arrays(manifest, np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(ManifestError, match="arrays named \\['cls', 'extra', 'output'\\]"):
        output_arrays(manifest, {"output": 2, "cls": 1, "extra": 3})


def test_port_names_of_more_outputs_are_reserved_top_names():
    from rtlgen.sim_tb.tb_manifest import identifier_problem, is_port_name

    assert is_port_name("m3_axis_tdata") and is_port_name("m_axis_tuser")
    assert not is_port_name("m0_axis_tdata") and not is_port_name("m3_axis")
    assert "cannot be called" in identifier_problem("m12_axis_tready")
