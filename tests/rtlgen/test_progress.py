"""rtlgen.progress.step: plain lines with a heartbeat in a log, a spinner on a terminal."""

import io
import re
import threading
import time

import pytest
from rich.console import Console

from rtlgen.progress import quiet_step, step


def _log_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200), buffer  # a file: not a terminal


def _lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


def test_step_in_a_log_prints_start_and_done_lines():
    console, buffer = _log_console()
    with step("building the thing", console=console):
        pass
    lines = _lines(buffer)
    assert lines[0] == "building the thing ..."
    assert re.fullmatch(r"building the thing: done in \d+\.\d s", lines[-1])
    assert len(lines) == 2


def test_step_in_a_log_prints_heartbeat_lines_while_the_body_runs():
    console, buffer = _log_console()
    with step("synthesizing", console=console, heartbeat_seconds=0.01):
        deadline = time.monotonic() + 10  # bounded: a broken heartbeat fails, never hangs
        while buffer.getvalue().count("still running") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    beats = [line for line in _lines(buffer) if "still running" in line]
    assert len(beats) >= 3, buffer.getvalue()
    assert all(re.fullmatch(r"  synthesizing: still running, \d+\.\d s", line) for line in beats)


def test_step_in_a_log_stops_the_heartbeat_when_done():
    console, buffer = _log_console()
    with step("quick", console=console, heartbeat_seconds=0.01):
        pass
    after = buffer.getvalue()
    time.sleep(0.05)
    assert buffer.getvalue() == after
    assert not any(thread.name == "rtlgen-progress" for thread in threading.enumerate())


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_step_in_a_log_says_failed_and_lets_the_exception_through(error):
    console, buffer = _log_console()
    with pytest.raises(type(error)), step("nextpnr", console=console):
        raise error
    assert re.fullmatch(r"nextpnr: failed after \d+\.\d s", _lines(buffer)[-1])


@pytest.mark.parametrize("notes", [[], ["elaborating hardware"], ["a", "b", "c"]])
def test_step_notes_are_indented_lines_in_a_log(notes):
    console, buffer = _log_console()
    with step("generating", console=console) as note:
        for text in notes:
            note(text)
    assert _lines(buffer)[1:-1] == [f"  {text}" for text in notes]


def test_step_on_a_terminal_prints_no_start_line_and_no_heartbeat():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with step("building", console=console, heartbeat_seconds=0.01) as note:
        note("half way")
        time.sleep(0.05)
    text = buffer.getvalue()
    assert "building ..." not in text and "still running" not in text
    assert "building: done in" in text


def test_quiet_step_prints_nothing(capsys):
    with quiet_step("anything") as note:
        note("a note")
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize("message", ["reading x[/b].h5", "[bold]model", "out[/]"])
def test_step_prints_messages_like_rich_markup_as_they_are(terminal, message):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=200)
    with step(message, console=console) as note:
        note("[/note]")
    assert f"{message}: done in" in buffer.getvalue()
