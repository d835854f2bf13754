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
def _every(seconds: float, action: Callable[[], None]) -> Iterator[None]:
    """Call `action` every `seconds` from a daemon thread while the body runs."""
    finished = threading.Event()

    def repeat() -> None:
        while not finished.wait(seconds):
            action()

    thread = threading.Thread(target=repeat, name="rtlgen-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()


@contextlib.contextmanager
def step(
    message: str,
    *,
    console: Console | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> Iterator[Note]:
    """Show `message` while the body runs: a spinner with the elapsed time on a terminal,
    plain lines elsewhere (`message ...`, a heartbeat line every `heartbeat_seconds`,
    `message: done in N s`, or `message: failed after N s` when the body raises)."""
    console = console or Console()
    started = time.monotonic()

    def elapsed() -> str:
        return _seconds(time.monotonic() - started)

    if console.is_terminal:
        shown = [message]
        # Text, not str: a path in the message must never be read as rich markup ("[/x]").
        with console.status(Text(message)) as status:

            def show() -> None:
                status.update(Text(f"{shown[0]} ({elapsed()})"))

            def note(text: str) -> None:
                shown[0] = f"{message}: {text}"
                show()

            with _every(1.0, show):
                yield note
        console.print(Text(f"{message}: done in {elapsed()}"))
        return

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False)

    say(f"{message} ...")
    outcome = "failed after"
    try:
        with _every(heartbeat_seconds, lambda: say(f"  {message}: still running, {elapsed()}")):
            yield lambda text: say(f"  {text}")
        outcome = "done in"
    finally:
        say(f"{message}: {outcome} {elapsed()}")


@contextlib.contextmanager
def quiet_step(_message: str) -> Iterator[Note]:
    """A `StepProgress` that shows nothing (library default, machine-readable output)."""
    yield lambda _text: None
