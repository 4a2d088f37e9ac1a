"""How much memory a run may take: the memory available to a device, and the check that refuses
a simulation whose estimate does not fit before anything is allocated."""

from __future__ import annotations

import os

import torch

from isospike.errors import SimulationTooLargeError


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory a new allocation can take on ``device`` now (CPU: the kernel's MemAvailable; CUDA:
    the free device memory); None when it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def check_fits(needed: int, what: str, advice: str, device: torch.device | str = "cpu") -> None:
    """Raise :class:`SimulationTooLargeError` when ``needed`` bytes (a lower bound of what the run
    holds at once) exceed the memory available on ``device``."""
    free = available_bytes(device)
    if free is not None and needed > free:
        raise SimulationTooLargeError(f"{what} needs at least {_gib(needed)} at once, more than the {_gib(free)} "
                                      f"available; {advice}")
