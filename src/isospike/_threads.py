"""Thread counts around isospike's compiled (numba) kernels.

numba's parallel kernels start an OpenMP or TBB thread pool the first time they run, and with
OpenMP that resets the process-wide thread count torch reads: a user's
``torch.set_num_threads(1)`` became the core count after the first simulation. :func:`kept_threads`
wraps each kernel call: the kernel runs on at most as many threads as torch is set to use (the
user's setting is the one that counts), and torch's and numba's counts are put back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def kept_threads() -> Iterator[None]:
    """Run the block with numba limited to torch's thread count, then restore both counts.

    Cheap (a few microseconds): meant around every call of a ``parallel=True`` numba kernel."""
    import numba

    torch_threads = torch.get_num_threads()
    numba_threads = numba.get_num_threads()
    wanted = max(1, min(torch_threads, int(getattr(numba.config, "NUMBA_NUM_THREADS", numba_threads))))
    if wanted != numba_threads:
        numba.set_num_threads(wanted)
    try:
        yield
    finally:
        if numba.get_num_threads() != numba_threads:
            numba.set_num_threads(numba_threads)
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
