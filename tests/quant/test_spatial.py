"""Zero padding / cropping / nearest upsampling kernels against the Keras layers."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.spatial import (
    crop,
    cropped_shape,
    padded_shape,
    upsample_nearest,
    upsampled_shape,
    zero_pad,
)


def keras_layer(name: str, *args, **kwargs):
    tf = pytest.importorskip("tensorflow")
    return getattr(tf.keras.layers, name)(*args, **kwargs)


def through_keras(layer, mantissa: np.ndarray, t: FixedType) -> np.ndarray:
    """Mantissas of ``layer`` applied to the real values of ``mantissa`` (exact in float32)."""
    out = np.asarray(layer(t.to_float(mantissa).astype(np.float32)), dtype=np.float64)
    result = out * 2.0**t.frac
    assert np.array_equal(result, np.round(result))
    return result.astype(np.int64)


def matches_keras(kernel, out_shape, x: np.ndarray, amounts, layer, t: FixedType) -> None:
    """``kernel(x, amounts)`` has the shape ``out_shape`` gives and the values ``layer`` gives
    in Keras."""
    got = kernel(x, amounts)
    assert got.shape[1:] == out_shape(x.shape[1:], amounts)
    assert np.array_equal(got, through_keras(layer, x, t))


def mantissas(shape, t: FixedType, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(t.min_int, t.max_int + 1, size=shape)


TYPES = [FixedType(8, 3), FixedType(5, 0, False), FixedType(12, -2), FixedType(16, 15)]

PADDINGS_2D = [(1, 2, 0, 3), (0, 0, 1, 0), (2, 1, 3, 2), (0, 0, 0, 0)]
SHAPES_2D = [(3, 5, 2), (1, 1, 3), (4, 1, 1), (1, 6, 1)]


@pytest.mark.parametrize("padding", PADDINGS_2D)
@pytest.mark.parametrize("shape", SHAPES_2D)
def test_zero_pad_2d_matches_keras(shape, padding):
    t = TYPES[sum(shape) % len(TYPES)]
    x = mantissas((2, *shape), t, seed=sum(padding))
    top, bottom, left, right = padding
    layer = keras_layer("ZeroPadding2D", padding=((top, bottom), (left, right)))
    matches_keras(zero_pad, padded_shape, x, padding, layer, t)


@pytest.mark.parametrize("padding", [(0, 3), (2, 1), (1, 1), (0, 0)])
@pytest.mark.parametrize("shape", [(5, 3), (1, 1), (7, 2)])
def test_zero_pad_1d_matches_keras(shape, padding):
    t = TYPES[shape[0] % len(TYPES)]
    x = mantissas((3, *shape), t, seed=shape[0])
    layer = keras_layer("ZeroPadding1D", padding=padding)
    matches_keras(zero_pad, padded_shape, x, (0, 0, *padding), layer, t)


CROPPINGS_2D = [
    ((7, 5, 2), (1, 2, 0, 3)),
    ((3, 3, 1), (2, 0, 0, 2)),
    ((5, 6, 3), (0, 0, 0, 0)),
    ((4, 1, 2), (1, 1, 0, 0)),
    ((1, 8, 1), (0, 0, 5, 2)),
]


@pytest.mark.parametrize("shape,cropping", CROPPINGS_2D)
def test_crop_2d_matches_keras(shape, cropping):
    t = TYPES[sum(shape) % len(TYPES)]
    x = mantissas((2, *shape), t, seed=sum(cropping))
    top, bottom, left, right = cropping
    layer = keras_layer("Cropping2D", cropping=((top, bottom), (left, right)))
    matches_keras(crop, cropped_shape, x, cropping, layer, t)


@pytest.mark.parametrize("shape,cropping", [((9, 2), (3, 1)), ((5, 1), (0, 4)), ((4, 3), (0, 0))])
def test_crop_1d_matches_keras(shape, cropping):
    t = TYPES[shape[0] % len(TYPES)]
    x = mantissas((3, *shape), t, seed=shape[0])
    layer = keras_layer("Cropping1D", cropping=cropping)
    matches_keras(crop, cropped_shape, x, (0, 0, *cropping), layer, t)


@pytest.mark.parametrize("size", [(2, 3), (1, 1), (3, 1), (1, 2)])
@pytest.mark.parametrize("shape", [(3, 5, 2), (1, 1, 3), (2, 1, 1)])
def test_upsample_2d_matches_keras(shape, size):
    t = TYPES[sum(size) % len(TYPES)]
    x = mantissas((2, *shape), t, seed=sum(shape))
    layer = keras_layer("UpSampling2D", size=size, interpolation="nearest")
    matches_keras(upsample_nearest, upsampled_shape, x, size, layer, t)


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize("shape", [(5, 3), (1, 1)])
def test_upsample_1d_matches_keras(shape, size):
    t = TYPES[size % len(TYPES)]
    x = mantissas((3, *shape), t, seed=shape[0])
    layer = keras_layer("UpSampling1D", size=size)
    matches_keras(upsample_nearest, upsampled_shape, x, (1, size), layer, t)


def test_1d_signal_is_an_image_of_height_one():
    x = mantissas((2, 7, 3), FixedType(6, 2), seed=3)
    for kernel, amounts in (
        (zero_pad, (0, 0, 2, 1)),
        (crop, (0, 0, 1, 3)),
        (upsample_nearest, (1, 3)),
    ):
        assert np.array_equal(kernel(x, amounts), kernel(x[:, None], amounts)[:, 0])


def test_kernels_keep_values_and_dtype():
    x = mantissas((2, 3, 4, 2), FixedType(10, 4), seed=1)
    for out in (zero_pad(x, (1, 0, 0, 2)), crop(x, (1, 0, 1, 1)), upsample_nearest(x, (2, 2))):
        assert out.dtype == np.int64
        assert set(np.unique(out)) <= set(np.unique(x)) | {0}


@pytest.mark.parametrize(
    "call",
    [
        lambda x: zero_pad(x, (0, 0, -1, 0)),
        lambda x: zero_pad(x, (0, 0, 1)),
        lambda x: zero_pad(x[:, 0], (1, 0, 0, 0)),  # 1D has no rows to pad
        lambda x: crop(x, (2, 1, 0, 0)),  # nothing left
        lambda x: crop(x, (0, 0, 0, 4)),
        lambda x: crop(x[:, 0], (1, 0, 0, 0)),
        lambda x: upsample_nearest(x, (0, 1)),
        lambda x: upsample_nearest(x[:, 0], (2, 1)),
        lambda x: upsample_nearest(x[0, 0], (1, 1)),  # no batch axis
    ],
)
def test_bad_amounts_are_user_errors(call):
    with pytest.raises(RtlgenError):
        call(np.zeros((1, 3, 4, 2), dtype=np.int64))
