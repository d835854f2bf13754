"""Peak resident memory of this process, measured so that a test can fail.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the wrong tool in tests: Linux carries it
across ``execve`` (a child started from a 1 GB pytest worker reports 1 GB before it does
anything) and it never goes down (a check "grew by less than N MB" passes trivially after an
earlier test peaked higher). ``VmHWM`` in ``/proc/self/status`` belongs to the current
address space, and writing ``5`` to ``/proc/self/clear_refs`` resets it (Linux >= 4.0).
"""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")


def peak_rss_mb() -> float:
    """Peak resident set of this process's address space since exec or the last reset."""
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> float:
    """Reset the peak to the current resident set; returns the new peak in MB."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return peak_rss_mb()
