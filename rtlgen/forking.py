"""Worker processes that inherit this process's state by fork: how rtlgen shares a
conversion's work between CPUs without pickling components or plans (`rtlgen.emit.
network_verilog` converts layer modules, `rtlgen.plan`'s budget search measures probes).

The caller puts what the workers need in a module global before `forked_pool` and clears it
after; the workers read it, compute and return small results (strings, numbers).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor


def can_fork() -> bool:
    """Whether this process may start forked workers: the platform forks, and this is not a
    daemonic process (a Dask worker, or a worker of ours), which may not have children."""
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and not multiprocessing.current_process().daemon
    )


def usable_cpus() -> int:
    """The processors this process may run on (`os.sched_getaffinity`, else `os.cpu_count`)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_jobs() -> int:
    """The CPUs this process may run on where it can fork (else 1)."""
    return usable_cpus() if can_fork() else 1


@contextlib.contextmanager
def forked_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` forked processes (callers check `can_fork` first)."""
    context = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        # Python >= 3.12 warns on fork with threads (the CLI's progress thread): the workers
        # only plan, time or convert; they never print progress
        warnings.filterwarnings("ignore", ".*fork", DeprecationWarning)
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            yield pool
