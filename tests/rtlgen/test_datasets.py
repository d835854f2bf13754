"""Tests for rtlgen/datasets.py (no TensorFlow needed)."""

import subprocess
import sys

import numpy as np
import pytest

from rtlgen.datasets import (
    DIGITS_8X8_INPUT_TYPE,
    SVHN_ENV_VAR,
    SVHN_URL,
    digits_8x8,
    load_svhn,
    synthetic_svhn,
)
from rtlgen.quant import FixedType, RtlgenError

scipy_io = pytest.importorskip("scipy.io")


def write_svhn_mat(path, n=7, seed=0):
    """A file in the official layout: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    labels = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    labels[0, 0] = 10
    scipy_io.savemat(path, {"X": images, "y": labels})
    return images, labels


# -- load_svhn --------------------------------------------------------------------------
def test_load_svhn_round_trips_generated_mat_file(tmp_path):
    images, labels = write_svhn_mat(tmp_path / "test_32x32.mat")
    x, y = load_svhn("test", path=tmp_path)
    assert x.shape == (7, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (7,) and y.dtype == np.int64
    np.testing.assert_array_equal(x, np.moveaxis(images, 3, 0).astype(np.float32) / 255.0)
    expected = labels[:, 0].astype(np.int64)
    expected[expected == 10] = 0
    np.testing.assert_array_equal(y, expected)
    assert y[0] == 0 and x.min() >= 0.0 and x.max() <= 1.0


def test_load_svhn_takes_the_mat_file_itself_and_limits_samples(tmp_path):
    images, _ = write_svhn_mat(tmp_path / "mine.mat")
    x, y = load_svhn("train", path=tmp_path / "mine.mat", max_samples=3)
    assert x.shape == (3, 32, 32, 3) and y.shape == (3,)
    np.testing.assert_array_equal(x[2], images[..., 2] / np.float32(255.0))


def test_load_svhn_reads_directory_from_environment(tmp_path, monkeypatch):
    write_svhn_mat(tmp_path / "train_32x32.mat", n=2)
    monkeypatch.setenv(SVHN_ENV_VAR, str(tmp_path))
    x, _ = load_svhn("train")
    assert x.shape == (2, 32, 32, 3)


def test_load_svhn_missing_file_names_where_it_looked_and_where_to_get_it(tmp_path):
    with pytest.raises(RtlgenError) as info:
        load_svhn("train", path=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "train_32x32.mat") in message
    assert SVHN_URL in message


def test_load_svhn_without_location_names_the_environment_variable(monkeypatch):
    monkeypatch.delenv(SVHN_ENV_VAR, raising=False)
    with pytest.raises(RtlgenError, match=SVHN_ENV_VAR):
        load_svhn("test")


def test_load_svhn_rejects_unknown_split(tmp_path):
    with pytest.raises(RtlgenError, match="unknown SVHN split"):
        load_svhn("validation", path=tmp_path)


def test_load_svhn_rejects_mat_file_of_other_layout(tmp_path):
    scipy_io.savemat(
        tmp_path / "train_32x32.mat", {"X": np.zeros((28, 28, 5)), "y": np.zeros((5, 1))}
    )
    with pytest.raises(RtlgenError, match=r"expected X of shape \(32, 32, 3, N\)"):
        load_svhn("train", path=tmp_path)


def test_load_svhn_rejects_file_that_is_not_matlab(tmp_path):
    (tmp_path / "train_32x32.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(RtlgenError, match="cannot read SVHN file"):
        load_svhn("train", path=tmp_path)


# -- synthetic_svhn ---------------------------------------------------------------------
def test_synthetic_svhn_has_svhn_shape_range_and_labels():
    x, y = synthetic_svhn(200, seed=3)
    assert x.shape == (200, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (200,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))
    # Not blank: images have contrast, and differ from each other.
    assert np.all(x.reshape(200, -1).std(axis=1) > 0.02)
    assert len({image.tobytes() for image in x}) == 200


def test_synthetic_svhn_is_deterministic_per_seed():
    x1, y1 = synthetic_svhn(40, seed=11)
    x2, y2 = synthetic_svhn(40, seed=11)
    x3, _ = synthetic_svhn(40, seed=12)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_synthetic_svhn_first_images_do_not_depend_on_count():
    x_small, y_small = synthetic_svhn(10, seed=5)
    x_large, y_large = synthetic_svhn(30, seed=5)
    np.testing.assert_array_equal(x_small, x_large[:10])
    np.testing.assert_array_equal(y_small, y_large[:10])


def test_synthetic_svhn_empty_request():
    x, y = synthetic_svhn(0, seed=0)
    assert x.shape == (0, 32, 32, 3) and y.shape == (0,)


@pytest.mark.slow  # trains a classifier on 10,000 images (~40 s on a loaded machine)
def test_synthetic_svhn_is_learnable_by_a_linear_model():
    linear_model = pytest.importorskip("sklearn.linear_model")
    x, y = synthetic_svhn(2500, seed=1)
    # Digits may be lighter or darker than the background: a linear model needs features
    # that ignore the polarity (distance of each pixel from the border's median grey).
    grey = x.mean(axis=-1)
    border = np.concatenate([grey[:, :2].reshape(len(x), -1), grey[:, -2:].reshape(len(x), -1)], 1)
    ink = np.abs(grey - np.median(border, axis=1)[:, None, None])
    ink = ink.reshape(len(x), 16, 2, 16, 2).mean(axis=(2, 4))
    features = (ink / (ink.reshape(len(x), -1).max(axis=1)[:, None, None] + 1e-6)).reshape(
        len(x), -1
    )
    classifier = linear_model.LogisticRegression(max_iter=300, C=0.2)
    classifier.fit(features[:2000], y[:2000])
    accuracy = classifier.score(features[2000:], y[2000:])
    assert accuracy > 0.4  # chance is 0.1; measured 0.67


# -- digits_8x8 -------------------------------------------------------------------------
def test_digits_8x8_is_exact_in_the_documented_input_types():
    x, y = digits_8x8()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32 and y.shape == (1797,)
    assert x.min() == 0.0 and x.max() == 15 / 16
    for text in (DIGITS_8X8_INPUT_TYPE, "ufixed<4,0>"):
        fixed = FixedType.parse(text)
        np.testing.assert_array_equal(fixed.to_float(fixed.quantize(x)), x)


def test_digits_8x8_split_is_stratified_and_complete():
    x_train, y_train = digits_8x8("train", seed=0)
    x_test, y_test = digits_8x8("test", seed=0)
    assert len(x_train) + len(x_test) == 1797 and len(x_test) == 360
    assert np.all(np.abs(np.bincount(y_test) - 36) <= 1)
    again, _ = digits_8x8("test", seed=0)
    np.testing.assert_array_equal(x_test, again)


def test_digits_8x8_rejects_unknown_split():
    with pytest.raises(RtlgenError, match="unknown digits_8x8 split"):
        digits_8x8("validation")


def test_datasets_module_does_not_import_tensorflow():
    code = "import sys, rtlgen.datasets; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
