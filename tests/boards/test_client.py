"""Host-side framing (rtlgen.boards.protocol) and the client loop, without hardware."""

import sys

import numpy as np
import pytest
from hypothesis import given

from rtlgen.boards.client import run_on_board
from rtlgen.boards.manifest import beat_bytes, load_manifest
from rtlgen.boards.protocol import (
    REQUEST_HEADER,
    RESPONSE_HEADER,
    decode_response,
    encode_request,
    pack_beats,
    unpack_beats,
)
from rtlgen.quant.errors import RtlgenError
from tests.sim_tb.strategies import specs_and_samples


@pytest.fixture(scope="module")
def manifest(standin_outdir):
    return load_manifest(standin_outdir)


def test_request_is_header_then_each_beat_little_endian(manifest):
    sample = np.array([[1, -1, 127], [-128, 0, 2], [0, 0, 0], [16, 32, -2]])
    assert encode_request(sample, manifest) == bytes(
        [REQUEST_HEADER, 0x01, 0xFF, 0x7F, 0x80, 0x00, 0x02, 0, 0, 0, 0x10, 0x20, 0xFE]
    )


def test_response_decodes_class_and_sign_extended_outputs(manifest):
    # Two int10 elements packed into 20 bits: -5 = 0x3FB, 300 = 0x12C -> 0x4B3FB.
    response = bytes([RESPONSE_HEADER, 1, 0xFB, 0xB3, 0x04])
    class_index, outputs = decode_response(response, manifest)
    assert class_index == 1
    np.testing.assert_array_equal(outputs, [-5, 300])


@given(specs_and_samples())
def test_pack_then_unpack_gives_the_sample_back(port_and_sample):
    port, sample = port_and_sample
    packed = pack_beats(sample, port)
    assert len(packed) == port.beats_per_sample * beat_bytes(port)
    np.testing.assert_array_equal(unpack_beats(packed, port), sample)


def test_encode_rejects_values_outside_the_input_type(manifest):
    sample = np.zeros((4, 3), dtype=np.int64)
    sample[2, 1] = 128
    with pytest.raises(RtlgenError, match=r"input element \(2, 1\) = 128 does not fit"):
        encode_request(sample, manifest)


def test_encode_rejects_a_wrong_shape(manifest):
    with pytest.raises(RtlgenError, match="differs from the network's input shape"):
        encode_request(np.zeros((3, 4), dtype=np.int64), manifest)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (bytes([RESPONSE_HEADER, 0, 0, 0]), "has 4 bytes, expected 5"),
        (bytes([0x00, 0, 0, 0, 0]), "starts with 0x00"),
    ],
)
def test_decode_rejects_malformed_responses(manifest, response, message):
    with pytest.raises(RtlgenError, match=message):
        decode_response(response, manifest)


class FakeBoard:
    """Answers requests like the bitstream would, computing with the stand-in's reference."""

    def __init__(self, manifest, reference, truncate_after=None):
        self.manifest, self.reference, self.truncate_after = manifest, reference, truncate_after
        self.pending = b""
        self.requests = 0

    def write(self, data):
        assert data[0] == REQUEST_HEADER
        sample = unpack_beats(data[1:], self.manifest.input)
        classes, outputs = self.reference(sample[np.newaxis])
        self.pending = bytes([RESPONSE_HEADER, int(classes[0])]) + pack_beats(
            outputs[0], self.manifest.output
        )
        self.requests += 1

    def read(self, size):
        data = self.pending[:size]
        if self.truncate_after is not None and self.requests > self.truncate_after:
            data = data[:2]  # as a serial read that timed out
        return data


def test_run_on_board_returns_classes_and_outputs_per_sample(manifest, dut, standin_outdir):
    x_int = np.random.default_rng(0).integers(-128, 128, size=(5, 4, 3))
    classes, outputs = run_on_board(
        FakeBoard(manifest, dut.classes_and_outputs), x_int, standin_outdir
    )
    expected_classes, expected_outputs = dut.classes_and_outputs(x_int)
    np.testing.assert_array_equal(classes, expected_classes)
    np.testing.assert_array_equal(outputs, expected_outputs)
    assert outputs.shape == (5, 2) and classes.dtype == np.int64


def test_run_on_board_reports_a_short_answer(manifest, dut):
    x_int = np.zeros((3, 4, 3), dtype=np.int64)
    with pytest.raises(RtlgenError, match="answered sample 1 with 2 of 5 bytes"):
        run_on_board(
            FakeBoard(manifest, dut.classes_and_outputs, truncate_after=1), x_int, manifest
        )


def test_run_on_board_without_pyserial_says_how_to_install_it(manifest, monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)  # makes `import serial` fail
    with pytest.raises(RtlgenError, match="pip install pyserial"):
        run_on_board("/dev/ttyUSB0", np.zeros((4, 3), dtype=np.int64), manifest)
