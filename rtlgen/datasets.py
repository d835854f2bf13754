"""Image data sets for training and testing rtlgen's example networks (no TensorFlow here).

- :func:`load_svhn` reads the official SVHN cropped-digit files (``train_32x32.mat``,
  ``test_32x32.mat``, ``extra_32x32.mat`` from http://ufldl.stanford.edu/housenumbers/).
  rtlgen never downloads them: fetch them yourself and point ``path`` or the environment
  variable ``RTLGEN_SVHN_DIR`` at the directory.
- :func:`synthetic_svhn` renders a **synthetic stand-in** for SVHN of the same shape and
  range, for machines without the real files (tests, CI, demos). It is learnable and not
  trivial, but it is *not* SVHN: accuracies measured on it say nothing about accuracy on the
  real data set.
- :func:`digits_8x8` wraps scikit-learn's bundled handwritten digits (real data, shipped
  offline) at a fixed-point-exact scale; it feeds the tiny bundled demo network.

Images are ``(N, H, W, C)`` float32 (channels last, as Keras); labels are int64 class
indices 0..9.

scipy (``load_svhn``, ``synthetic_svhn``) and scikit-learn (``digits_8x8``) are imported
only when those functions run; both come with ``pip install rtlgen[train]``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from rtlgen.quant.errors import RtlgenError

__all__ = [
    "SVHN_URL",
    "SVHN_ENV_VAR",
    "DIGITS_8X8_INPUT_TYPE",
    "load_svhn",
    "synthetic_svhn",
    "digits_8x8",
]

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_ENV_VAR = "RTLGEN_SVHN_DIR"
_SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}

#: Every pixel of :func:`digits_8x8` is ``v / 16`` with an integer ``v`` in 0..15, so it is
#: exact in ``ufixed<4,0>`` (mantissa ``v``) and in any signed type with at least 4
#: fractional bits and 1 integer bit; rtlgen's demo uses ``fixed<8,1>`` (mantissa ``8 * v``).
DIGITS_8X8_INPUT_TYPE = "fixed<8,1>"


def _require(module: str, function: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise RtlgenError(
            f"{function} needs the Python package {module.split('.')[0]!r}, which is not "
            f"installed: pip install 'rtlgen[train]'"
        ) from exc


# --------------------------------------------------------------------------------------
# Real SVHN
# --------------------------------------------------------------------------------------
def _svhn_file(split: str, path: str | os.PathLike | None) -> Path:
    if split not in _SVHN_FILES:
        raise RtlgenError(
            f"unknown SVHN split {split!r}: supported are {', '.join(sorted(_SVHN_FILES))}"
        )
    name = _SVHN_FILES[split]
    if path is not None:
        where, source = Path(path), "the path argument"
    elif os.environ.get(SVHN_ENV_VAR):
        where, source = Path(os.environ[SVHN_ENV_VAR]), f"${SVHN_ENV_VAR}"
    else:
        raise RtlgenError(
            f"no SVHN location given: pass path=DIR (or the .mat file) or set {SVHN_ENV_VAR}=DIR, "
            f"a directory holding {name} (download it from {SVHN_URL}{name}); "
            f"synthetic_svhn() is a stand-in when the real data is not available"
        )
    candidate = where if where.suffix == ".mat" else where / name
    if not candidate.is_file():
        raise RtlgenError(
            f"SVHN {split} file not found: looked for {candidate} (from {source}); "
            f"download {name} from {SVHN_URL}{name} into that directory"
        )
    return candidate


def load_svhn(
    split: str = "train",
    path: str | os.PathLike | None = None,
    max_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The official SVHN cropped digits (format 2) as ``(x, y)``.

    ``split`` is ``"train"``, ``"test"`` or ``"extra"``. ``path`` is a directory holding
    ``<split>_32x32.mat`` or the ``.mat`` file itself; without it the directory named by
    ``$RTLGEN_SVHN_DIR`` is used. ``max_samples`` keeps only the first N images (the train
    split alone is 73,257 images, 0.9 GB as float32).

    Returns ``x`` of shape ``(N, 32, 32, 3)`` float32 in [0, 1] (``uint8 / 255``) and ``y``
    int64 digits 0..9 (the files label the digit 0 as 10; it is mapped to 0).

    Raises :class:`RtlgenError` if the file is missing or is not an SVHN ``.mat`` file.
    """
    file = _svhn_file(split, path)
    sio = _require("scipy.io", "load_svhn")
    try:
        mat = sio.loadmat(file, variable_names=["X", "y"])
    except (ValueError, OSError, NotImplementedError) as exc:
        raise RtlgenError(f"cannot read SVHN file {file}: {exc}") from exc
    if "X" not in mat or "y" not in mat:
        raise RtlgenError(
            f"{file} is not an SVHN cropped-digits file: variables 'X' and 'y' missing"
        )
    images, labels = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != labels.size:
        raise RtlgenError(
            f"{file}: expected X of shape (32, 32, 3, N) and N labels, found X {images.shape} "
            f"and {labels.size} labels"
        )
    if max_samples is not None:
        images, labels = images[..., :max_samples], labels[:max_samples]
    x = np.ascontiguousarray(np.moveaxis(images, 3, 0), dtype=np.float32) / np.float32(255.0)
    y = labels.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() > 10):
        raise RtlgenError(f"{file}: labels outside 0..10 (found {y.min()}..{y.max()})")
    y[y == 10] = 0
    return x, y


# --------------------------------------------------------------------------------------
# Synthetic SVHN stand-in
# --------------------------------------------------------------------------------------
_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
)
_GLYPH_POINTS = 36  # at 72 dpi: digits ~27 px tall, a little above their size in the output
_BLUR_SIGMAS = (0.0, 0.5, 0.8, 1.1)  # final blur (px)


@functools.cache
def _glyphs() -> tuple[tuple[np.ndarray, ...], ...]:
    """Coverage bitmaps ``[font][digit]`` (float32 in [0, 1], cropped to the ink), rendered
    once per process with matplotlib's Agg renderer and bundled DejaVu fonts."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fig = Figure(figsize=(1.0, 1.0), dpi=72)
    canvas = FigureCanvasAgg(fig)
    text = fig.text(0.5, 0.5, "0", ha="center", va="center", color="black")
    fonts = []
    for font_file in _FONT_FILES:
        text.set_fontproperties(FontProperties(fname=font_dir / font_file, size=_GLYPH_POINTS))
        digits = []
        for digit in "0123456789":
            text.set_text(digit)
            canvas.draw()
            ink = 1.0 - np.asarray(canvas.buffer_rgba())[..., 0].astype(np.float32) / 255.0
            rows = np.flatnonzero(ink.max(axis=1) > 0.02)
            cols = np.flatnonzero(ink.max(axis=0) > 0.02)
            digits.append(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy())
        fonts.append(tuple(digits))
    return tuple(fonts)


def _digit_strip(
    glyphs: tuple[np.ndarray, ...], centre: int, left: list[int], right: list[int], gap: int
) -> tuple[np.ndarray, float, float]:
    """A row of glyphs (``left``, ``centre``, ``right`` digits, ``gap`` px apart) on one
    canvas; returns the canvas and the (row, column) of the centre digit's middle."""
    sequence = [glyphs[d] for d in left] + [glyphs[centre]] + [glyphs[d] for d in right]
    height = max(g.shape[0] for g in sequence)
    widths = [g.shape[1] for g in sequence]
    pad = 4
    strip = np.zeros(
        (height + 2 * pad, sum(widths) + gap * (len(widths) - 1) + 2 * pad), np.float32
    )
    col = pad
    centre_col = 0.0
    for index, (glyph, width) in enumerate(zip(sequence, widths, strict=True)):
        top = pad + (height - glyph.shape[0]) // 2
        strip[top : top + glyph.shape[0], col : col + width] = glyph
        if index == len(left):
            centre_col = col + (width - 1) / 2
        col += width + gap
    return strip, pad + (height - 1) / 2, centre_col


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background and foreground RGB with at least 0.25 luminance contrast, often desaturated."""
    luma = np.array([0.299, 0.587, 0.114])
    while True:
        background, foreground = rng.random(3), rng.random(3)
        for colour in (background, foreground):
            grey = colour @ luma
            colour[:] = grey + (colour - grey) * rng.uniform(0.2, 1.0)
        if abs(background @ luma - foreground @ luma) >= 0.25:
            return np.clip(background, 0, 1), np.clip(foreground, 0, 1)


def synthetic_svhn(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic **stand-in** for SVHN cropped digits: ``(x, y)`` with ``x`` of shape
    ``(n, 32, 32, 3)`` float32 in [0, 1] and ``y`` int64 labels 0..9 (uniform).

    Each image is a house-number-like row of printed digits (12 DejaVu variants: Sans,
    Sans Mono and Serif, each regular/bold/oblique), the labelled digit near the centre and,
    usually, parts of neighbouring digits cut by the left/right edges, as in SVHN. Random
    digit height (13..26 px), horizontal stretch, rotation (+-12 deg), shear, offset (+-2 px across, +-3 px vertically),
    spacing, colours (foreground/background contrast >= 0.25, often desaturated), background
    gradient, occasional plate-edge bar, blur (sigma 0..1.1 px) and Gaussian noise.

    This is not SVHN: it contains no photographs, and accuracies on it do not predict
    accuracies on the real data (use :func:`load_svhn` for that). It exists so that the SVHN
    network can be trained and tested where the real files are not available.

    Deterministic: image ``i`` depends only on ``(seed, i)``, so ``synthetic_svhn(100, s)``
    is a prefix of ``synthetic_svhn(10_000, s)`` (given the same matplotlib/FreeType, which
    render the glyphs). About 10,000 images in a few seconds (the
    glyphs are rendered once per process, then composed with ``scipy.ndimage``).
    """
    ndimage = _require("scipy.ndimage", "synthetic_svhn")
    if n < 0:
        raise RtlgenError(f"synthetic_svhn: n must be >= 0, got {n}")
    glyphs = _glyphs()
    labels = np.empty(n, np.int64)
    images = np.empty((n, 32, 32, 3), np.float32)
    rows, cols = np.mgrid[0:32, 0:32].astype(np.float32)
    rows, cols = (rows - 15.5) / 32, (cols - 15.5) / 32
    for index in range(n):
        # One generator per image: the first k images do not depend on n.
        rng = np.random.default_rng([seed, index])
        label = int(rng.integers(0, 10))
        labels[index] = label
        font = glyphs[rng.integers(len(glyphs))]
        left = list(rng.integers(0, 10, size=rng.choice(3, p=[0.25, 0.5, 0.25])))
        right = list(rng.integers(0, 10, size=rng.choice(3, p=[0.25, 0.5, 0.25])))
        gap = int(rng.integers(1, 8))
        strip, centre_row, centre_col = _digit_strip(font, label, left, right, gap)

        # Output pixel p samples the strip at  scale * Rotate * Shear * Stretch^-1 (p - shift) + centre.
        scale = font[label].shape[0] / rng.uniform(13.0, 26.0)
        angle = np.deg2rad(rng.uniform(-12.0, 12.0))
        shear = rng.uniform(-0.15, 0.15)
        stretch = rng.uniform(0.8, 1.25)
        cos, sin = np.cos(angle), np.sin(angle)
        rotate = np.array([[cos, -sin], [sin, cos]])
        matrix = (
            scale * rotate @ np.array([[1.0, 0.0], [shear, 1.0]]) @ np.diag([1.0, 1.0 / stretch])
        )
        shift = np.array([15.5, 15.5]) + rng.uniform([-3.0, -2.0], [3.0, 2.0])
        offset = np.array([centre_row, centre_col]) - matrix @ shift
        coverage = ndimage.affine_transform(
            strip, matrix, offset=offset, output_shape=(32, 32), order=1, cval=0.0
        )

        background, foreground = _colour_pair(rng)
        gradient = rng.normal(0.0, 0.15, size=(2, 3))
        image = (background + rows[..., None] * gradient[0] + cols[..., None] * gradient[1]).astype(
            np.float32
        )
        if rng.random() < 0.2:  # the edge of a plate or a door frame
            lo, hi = np.sort(rng.integers(0, 32, size=2))
            if rng.random() < 0.5:
                image[lo : hi + 1, :] = rng.random(3)
            else:
                image[:, lo : hi + 1] = rng.random(3)
        alpha = (coverage * rng.uniform(0.75, 1.0))[..., None]
        image = image * (1.0 - alpha) + foreground * alpha
        sigma = _BLUR_SIGMAS[rng.integers(len(_BLUR_SIGMAS))]
        if sigma:
            image = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0))
        image += rng.uniform(0.0, 0.06) * rng.standard_normal(image.shape, dtype=np.float32)
        images[index] = np.clip(image, 0.0, 1.0)
    return images, labels


# --------------------------------------------------------------------------------------
# scikit-learn 8x8 digits
# --------------------------------------------------------------------------------------
def digits_8x8(
    split: str = "all", test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's real handwritten digits (1,797 images, bundled offline) as ``(x, y)``.

    ``x`` has shape ``(N, 8, 8, 1)`` float32: the 0..16 pixel counts ``v`` become
    ``min(v, 15) / 16``, i.e. values in [0, 15/16] on the grid 1/16. Saturating 16 to 15
    keeps every value below 1.0, so the images are *exactly* representable in
    ``ufixed<4,0>`` and in any signed type with >= 4 fractional bits, e.g. ``fixed<8,1>``
    (:data:`DIGITS_8X8_INPUT_TYPE`, mantissa ``8 * v``); converting them to the hardware
    input type loses nothing.

    ``split``: ``"all"`` (in the original order), ``"train"`` or ``"test"`` (a stratified
    split with ``test_fraction`` of the images in test, shuffled by ``seed``).
    """
    sk_datasets = _require("sklearn.datasets", "digits_8x8")
    digits = sk_datasets.load_digits()
    counts = np.asarray(digits.images, dtype=np.int64)
    x = (np.minimum(counts, 15).astype(np.float32) / np.float32(16.0))[..., None]
    y = np.asarray(digits.target, dtype=np.int64)
    if split == "all":
        return x, y
    if split not in ("train", "test"):
        raise RtlgenError(f"unknown digits_8x8 split {split!r}: supported are all, train, test")
    if not 0.0 < test_fraction < 1.0:
        raise RtlgenError(f"digits_8x8: test_fraction must be in (0, 1), got {test_fraction}")
    model_selection = _require("sklearn.model_selection", "digits_8x8")
    train_index, test_index = model_selection.train_test_split(
        np.arange(y.size), test_size=test_fraction, stratify=y, random_state=seed
    )
    index = train_index if split == "train" else test_index
    return x[index], y[index]
