"""Progress of long steps that reads well both in a terminal and in a CI log.

`step("building the Verilator simulator")` is a context manager around a step that may take
minutes (a Verilator build, Yosys, nextpnr). On a terminal it shows a rich spinner with the
elapsed time. Anywhere else (a pipe, a file, a CI log) a spinner would print nothing until the
end, or control-character garbage, so it prints plain lines instead:

    building the Verilator simulator ...
      building the Verilator simulator: still running, 15 s
    building the Verilator simulator: done in 21.4 s

The context manager yields a `note(text)` function for sub-steps (shown in the spinner, or
printed as an indented line). Library layers that must not import this module (the
stand-alone testbench in `rtlgen.sim_tb`) take any `Callable[[str], ContextManager]` as their
`progress` argument; `step` is one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from rich.console import Console
from rich.text import Text

__all__ = ["HEARTBEAT_SECONDS", "StepProgress", "quiet_step", "step"]

# A CI log that stays silent for minutes looks hung; one line every 15 s is still short.
HEARTBEAT_SECONDS = 15.0

Note = Callable[[str], None]
StepProgress = Callable[[str], AbstractContextManager[Note]]
"""What long-running library functions take as `progress`: message -> context manager."""


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


@contextlib.contextmanager
def step(
    message: str,
    *,
    console: Console | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> Iterator[Note]:
    """Show `message` while the body runs: a spinner on a terminal, plain lines elsewhere
    (`message ...`, a heartbeat line every `heartbeat_seconds`, `message: done in N s`, or
    `message: failed after N s` when the body raises)."""
    console = console or Console()
    started = time.monotonic()
    if console.is_terminal:
        # Text, not str: a path in the message must never be read as rich markup ("[/x]").
        with console.status(Text(message)) as status:

            def note(text: str) -> None:
                status.update(Text(f"{message}: {text}"))

            yield note
        console.print(Text(f"{message}: done in {_seconds(time.monotonic() - started)}"))
        return

    console.print(f"{message} ...", markup=False, highlight=False)
    finished = threading.Event()

    def heartbeat() -> None:
        while not finished.wait(heartbeat_seconds):
            elapsed = _seconds(time.monotonic() - started)
            console.print(f"  {message}: still running, {elapsed}", markup=False, highlight=False)

    beating = threading.Thread(target=heartbeat, name="rtlgen-progress", daemon=True)
    beating.start()

    def note(text: str) -> None:
        console.print(f"  {text}", markup=False, highlight=False)

    outcome = "failed after"
    try:
        yield note
        outcome = "done in"
    finally:
        finished.set()
        beating.join()
        elapsed = _seconds(time.monotonic() - started)
        console.print(f"{message}: {outcome} {elapsed}", markup=False, highlight=False)


@contextlib.contextmanager
def quiet_step(_message: str) -> Iterator[Note]:
    """A `StepProgress` that shows nothing (library default, machine-readable output)."""
    yield lambda _text: None
