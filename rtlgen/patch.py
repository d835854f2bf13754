"""A class attribute replaced while at least one block needs it: how rtlgen swaps a faster
implementation into Amaranth for the length of a conversion (`rtlgen.lean_netlist`,
`rtlgen.inprocess_yosys`).

`ClassPatch(owner, name, value).applied()` sets ``owner.name = value`` when the outermost
block begins and puts back what the class held then when it ends; nested and concurrent
blocks (threads) share the one replacement.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class ClassPatch:
    """``owner.name`` replaced by ``value`` inside `applied` blocks (re-entrant, thread-safe)."""

    def __init__(self, owner: type, name: str, value: object):
        self.owner, self.name, self.value = owner, name, value
        self._lock = threading.RLock()
        self._depth = 0
        self._saved: object = None  # the class's own attribute when the outermost block began

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = self.owner.__dict__[self.name]
                setattr(self.owner, self.name, self.value)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    setattr(self.owner, self.name, self._saved)
