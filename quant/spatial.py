"""Stream-reshaping layers: zero padding, cropping, nearest-neighbour upsampling.

Integer kernels on mantissas of shape (N, H, W, C) (images, channels_last) or (N, L, C)
(1D signals, treated as images of height 1: the vertical amounts must then be 0 / 1).
They move values and never change them: the result has the input's `FixedType` (padding
inserts mantissa 0, which every type holds), so no result-type function is needed.

Keras semantics matched (channels_last):

- `zero_pad`: ``ZeroPadding2D(((top, bottom), (left, right)))``, ``ZeroPadding1D((left, right))``;
- `crop`: ``Cropping2D(((top, bottom), (left, right)))``, ``Cropping1D((left, right))``;
- `upsample_nearest`: ``UpSampling2D((size_h, size_w), interpolation="nearest")`` (``np.repeat``
  along H, then W), ``UpSampling1D(size)`` (repeat along L, ``size_h`` = 1);
- `zero_insert`: ``stride_h - 1`` zero rows between rows and ``stride_w - 1`` zero columns
  between columns, then zero padding: the input of the stride-1 convolution that computes a
  ``Conv2DTranspose``/``Conv1DTranspose`` (`rtlgen.ops.conv_transpose`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import RtlgenError

__all__ = [
    "zero_pad",
    "crop",
    "upsample_nearest",
    "padded_shape",
    "cropped_shape",
    "upsampled_shape",
    "zero_insert",
    "zero_inserted_shape",
]


def _amounts(values: Sequence[int], n: int, what: str, minimum: int) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if len(values) != n or min(values) < minimum:
        raise RtlgenError(f"{what} must be {n} integers >= {minimum}, got {tuple(values)}")
    return values


def _image_shape(shape: Sequence[int], what: str) -> tuple[int, int, int]:
    """(H, W, C) of a per-sample shape (H, W, C) or (L, C)."""
    if len(shape) == 2:
        return 1, int(shape[0]), int(shape[1])
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    raise RtlgenError(f"{what}: expected a per-sample shape (H, W, C) or (L, C), got {shape}")


def _one_d_check(shape: Sequence[int], vertical: tuple[int, int], neutral: int, what: str) -> None:
    if len(shape) == 2 and vertical != (neutral, neutral):
        raise RtlgenError(
            f"{what} of a 1D signal (L, C) has no height to change: "
            f"vertical amounts must be {(neutral, neutral)}, got {vertical}"
        )


def padded_shape(shape: Sequence[int], padding: tuple[int, int, int, int]) -> tuple[int, ...]:
    """Per-sample shape after `zero_pad` (same rank as ``shape``)."""
    top, bottom, left, right = _amounts(padding, 4, "zero padding (top, bottom, left, right)", 0)
    _one_d_check(shape, (top, bottom), 0, "zero padding")
    height, width, channels = _image_shape(shape, "zero padding")
    out = (height + top + bottom, width + left + right, channels)
    return out[1:] if len(shape) == 2 else out


def cropped_shape(shape: Sequence[int], cropping: tuple[int, int, int, int]) -> tuple[int, ...]:
    """Per-sample shape after `crop`; an error if nothing would remain (as in Keras)."""
    top, bottom, left, right = _amounts(cropping, 4, "cropping (top, bottom, left, right)", 0)
    _one_d_check(shape, (top, bottom), 0, "cropping")
    height, width, channels = _image_shape(shape, "cropping")
    out = (height - top - bottom, width - left - right, channels)
    if out[0] < 1 or out[1] < 1:
        raise RtlgenError(
            f"cropping {tuple(cropping)} removes the whole {height}x{width} image "
            f"(at least one row and one column must remain)"
        )
    return out[1:] if len(shape) == 2 else out


def upsampled_shape(shape: Sequence[int], size: tuple[int, int]) -> tuple[int, ...]:
    """Per-sample shape after `upsample_nearest`."""
    size_h, size_w = _amounts(size, 2, "upsampling size (size_h, size_w)", 1)
    if len(shape) == 2 and size_h != 1:
        raise RtlgenError(
            f"upsampling of a 1D signal (L, C) has no height to repeat: size_h must be 1, "
            f"got {size_h}"
        )
    height, width, channels = _image_shape(shape, "upsampling")
    out = (height * size_h, width * size_w, channels)
    return out[1:] if len(shape) == 2 else out


def zero_inserted_shape(
    shape: Sequence[int], strides: tuple[int, int], padding: tuple[int, int, int, int]
) -> tuple[int, ...]:
    """Per-sample shape after `zero_insert`: ((H - 1) * stride_h + 1 + top + bottom,
    (W - 1) * stride_w + 1 + left + right, C)."""
    stride_h, stride_w = _amounts(strides, 2, "zero insertion strides (stride_h, stride_w)", 1)
    top, bottom, left, right = _amounts(padding, 4, "zero insertion padding", 0)
    _one_d_check(shape, (stride_h, stride_h), 1, "zero insertion")
    _one_d_check(shape, (top, bottom), 0, "zero insertion padding")
    height, width, channels = _image_shape(shape, "zero insertion")
    out = (
        (height - 1) * stride_h + 1 + top + bottom,
        (width - 1) * stride_w + 1 + left + right,
        channels,
    )
    return out[1:] if len(shape) == 2 else out


def zero_insert(
    x: np.ndarray, strides: tuple[int, int], padding: tuple[int, int, int, int]
) -> np.ndarray:
    """``x`` with ``stride - 1`` rows/columns of mantissa 0 between its rows/columns and
    ``top``/``bottom`` rows and ``left``/``right`` columns of 0 around."""
    x = _batch(x, "zero insertion")
    out_shape = zero_inserted_shape(x.shape[1:], strides, padding)
    top, _, left, _ = (int(v) for v in padding)
    stride_h, stride_w = (int(v) for v in strides)
    out = np.zeros((len(x), *out_shape), dtype=x.dtype)
    cols = slice(left, left + (x.shape[-2] - 1) * stride_w + 1, stride_w)
    if x.ndim == 3:
        out[:, cols] = x
    else:
        rows = slice(top, top + (x.shape[1] - 1) * stride_h + 1, stride_h)
        out[:, rows, cols] = x
    return out


def _batch(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise RtlgenError(f"{what}: expected (N, H, W, C) or (N, L, C) mantissas, got {x.shape}")
    return x


def zero_pad(x: np.ndarray, padding: tuple[int, int, int, int]) -> np.ndarray:
    """``x`` with ``top``/``bottom`` rows and ``left``/``right`` columns of mantissa 0."""
    x = _batch(x, "zero padding")
    padded_shape(x.shape[1:], padding)  # checks
    top, bottom, left, right = (int(v) for v in padding)
    widths = [(0, 0), (left, right), (0, 0)]
    if x.ndim == 4:
        widths.insert(1, (top, bottom))
    return np.pad(x, widths, mode="constant", constant_values=0)


def crop(x: np.ndarray, cropping: tuple[int, int, int, int]) -> np.ndarray:
    """``x`` without its first ``top``/last ``bottom`` rows and first ``left``/last ``right``
    columns."""
    x = _batch(x, "cropping")
    cropped_shape(x.shape[1:], cropping)  # checks
    top, bottom, left, right = (int(v) for v in cropping)
    cols = slice(left, x.shape[-2] - right)
    if x.ndim == 3:
        return x[:, cols].copy()
    return x[:, top : x.shape[1] - bottom, cols].copy()


def upsample_nearest(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Every row repeated ``size_h`` times and every column ``size_w`` times."""
    x = _batch(x, "upsampling")
    upsampled_shape(x.shape[1:], size)  # checks
    size_h, size_w = (int(v) for v in size)
    out = np.repeat(x, size_w, axis=-2)
    if x.ndim == 4:
        out = np.repeat(out, size_h, axis=1)
    return out
