"""Bounds on what a model, weights, graph or input file may make rtlgen read or allocate.

A model file is untrusted data: its config declares shapes, and its datasets declare their
own sizes, before anything is read. Every reader checks those declarations against one
`Limits` first, so a 4 KB file cannot ask for gigabytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtlgen.quant.errors import ModelFileError, RtlgenError

#: The CLI option that raises `Limits.max_parameters`; error messages name it.
MAX_PARAMS_OPTION = "--max-params"


@dataclass(frozen=True)
class Limits:
    """Caps on a model's size, checked before any allocation.

    The defaults are far above any network that fits an FPGA (the largest device holds a few
    hundred thousand LUTs and ~10k DSPs; 20 million constant weights would not fit even as
    block-RAM words), so they only stop hostile or corrupt files, never a real design.

    - ``max_parameters``: weights, biases and BatchNorm parameters the config declares in
      total (raise it with ``--max-params``);
    - ``max_bytes``: bytes of numeric data one file may make rtlgen read (weights of a model,
      one array of a saved graph, an input ``.npy``, an archive member once inflated);
    - ``max_activations``: elements of one feature map (a 4096 x 4096 x 3 image is 50 M);
    - ``max_operations``: multiplies (conv) or window comparisons (pooling) of one layer per
      sample; a big FPGA does a few thousand multiplies per cycle, and the reference model
      holds a layer's window matrix in memory;
    - ``max_config_bytes`` / ``max_config_depth``: size and nesting of a model's JSON config
      (a 100-layer QKeras model's is a few hundred KB; parsed JSON takes ~10x its size).
    """

    max_parameters: int = 20_000_000
    max_bytes: int = 1 << 30
    max_activations: int = 1 << 26
    max_operations: int = 1 << 30
    max_config_bytes: int = 16 << 20
    max_config_depth: int = 64

    def __post_init__(self) -> None:
        for name in (
            "max_parameters",
            "max_bytes",
            "max_activations",
            "max_operations",
            "max_config_bytes",
            "max_config_depth",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = Limits()
#: Largest single integer of a model config (units, filters, kernel size, strides, pool
#: size, an input dimension): the int32 range TensorFlow uses for shapes.
MAX_DIMENSION = (1 << 31) - 1


def element_count(shape: Iterable[int]) -> int:
    """Elements of a shape, in Python integers (no int64 overflow)."""
    return math.prod(int(d) for d in shape)


def check_parameters(total: int, limits: Limits, where: str) -> None:
    """Refuse a model whose declared parameters exceed the cap (before reading them)."""
    if total > limits.max_parameters:
        raise ModelFileError(
            f"{where}: the model declares {total:,} parameters so far, more than the limit of "
            f"{limits.max_parameters:,} (raise it with {MAX_PARAMS_OPTION} N if the model is "
            "really this large)"
        )


def check_bytes(nbytes: int, limits: Limits, what: str) -> None:
    if nbytes > limits.max_bytes:
        raise ModelFileError(
            f"{what}: {nbytes:,} bytes of data is more than the limit of {limits.max_bytes:,} bytes"
        )


def check_depth(value: object, limits: Limits, what: str) -> None:
    """Refuse JSON data nested deeper than ``limits.max_config_depth`` (later code may
    recurse over it) or holding more than a million values."""
    check_nesting(value, what, limits.max_config_depth, 1_000_000)


#: the leaves of parsed JSON (YAML's too, but for dates)
_SCALARS = frozenset({str, int, float, bool})


def check_nesting(
    value: object,
    what: str,
    max_depth: int,
    max_values: int,
    error: type[RtlgenError] = ModelFileError,
) -> None:
    """Refuse parsed JSON/YAML data nested deeper than ``max_depth`` or holding more than
    ``max_values`` values. Iterative, so it cannot itself overflow the stack; a value shared
    through YAML aliases counts once per reference, so an alias bomb ("billion laughs") stops
    within the budget instead of being walked exponentially."""
    budget = max_values
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise error(f"{what}: more than {max_values:,} values (aliases expanded)")
        if depth > max_depth:
            raise error(f"{what}: nested more than {max_depth} levels deep")
        if item is None or type(item) in _SCALARS:
            continue  # (before the abstract Mapping check: its first look at a type walks
            # every registered Mapping class, ~25 ms of a small model's reading)
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)


def read_yaml(
    path: Path,
    what: str,
    max_bytes: int,
    max_depth: int,
    max_values: int,
    error: type[RtlgenError] = RtlgenError,
) -> Any:
    """Parse a small YAML file the user named (a precision config, a sweep spec) as plain data:
    a regular file only (a FIFO would block), at most ``max_bytes``, UTF-8, ``yaml.safe_load``
    (no tags that build Python objects), then `check_nesting`. Every problem is one ``error``
    line that starts with ``what``."""
    import yaml

    if not path.exists():
        raise error(f"{what} does not exist")
    if not path.is_file():
        raise error(f"{what}: not a regular file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise error(f"{what}: larger than {max_bytes:,} bytes")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise error(f"{what}: invalid YAML{line} ({problem})") from None
    except RecursionError:
        raise error(f"{what}: nested too deeply") from None
    check_nesting(data, what, max_depth, max_values, error)
    return data
