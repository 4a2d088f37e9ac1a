"""Thread counts around isospike's compiled (numba) kernels.

numba's parallel kernels start an OpenMP or TBB thread pool the first time they run, and with
OpenMP that resets the process-wide thread count torch reads: a user's
``torch.set_num_threads(1)`` became the core count after the first simulation. :func:`kept_threads`
wraps each kernel call: the kernel runs on at most as many threads as torch is set to use (the
user's setting is the one that counts), on no more cores than the process may use and no more
threads than the kernel has work items, and torch's and numba's counts are put back afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask: ``taskset``, cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def kept_threads(tasks: int | None = None) -> Iterator[None]:
    """Run the block with numba limited to torch's thread count, to the cores this process may
    use and to ``tasks`` (the kernel's independent work items: a kernel with one work item runs
    on one thread), then restore both counts.

    A parallel region waits at its end for every thread it started; on a machine shared with
    other jobs one descheduled thread stalls the region for a scheduler time slice, so threads
    without work of their own only cost time. Cheap (a few microseconds): meant around every
    call of a ``parallel=True`` numba kernel."""
    import numba

    torch_threads = torch.get_num_threads()
    numba_threads = numba.get_num_threads()
    wanted = min(torch_threads, int(getattr(numba.config, "NUMBA_NUM_THREADS", numba_threads)), available_cores())
    if tasks is not None:
        wanted = min(wanted, tasks)
    wanted = max(1, wanted)
    if wanted != numba_threads:
        numba.set_num_threads(wanted)
    try:
        yield
    finally:
        if numba.get_num_threads() != numba_threads:
            numba.set_num_threads(numba_threads)
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
