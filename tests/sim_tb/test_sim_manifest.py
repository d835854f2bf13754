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
