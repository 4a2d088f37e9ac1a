"""Shared helpers for the benchmark scripts: timing, JSON results, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def time_call(fn: Callable[[], Any], repeats: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and minimum wall time of ``fn()`` in seconds over ``repeats`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    from isospike._io import atomic_write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "machine": machine(), **data}
    return atomic_write_json(RESULTS / f"{name}.json", data)


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    from isospike.tables import text_table

    print(text_table(headers, rows))


class Stages:
    """Results of the finished stages of one case, in ``<directory>/stages.json``: with ``reuse``
    a stage found there is taken instead of recomputed (a long benchmark interrupted at any stage
    resumes after the last finished one)."""

    def __init__(self, directory: Path, reuse: bool) -> None:
        self.directory, self.reuse = directory, reuse
        self.path = directory / "stages.json"
        directory.mkdir(parents=True, exist_ok=True)
        self.done: dict = json.loads(self.path.read_text()) if (reuse and self.path.is_file()) else {}

    def get(self, key: str) -> Any:
        if self.reuse and key in self.done:
            print(f"   reusing {key} from {self.path}", flush=True)
            return self.done[key]
        return None

    def put(self, key: str, value: Any) -> None:
        from isospike._io import atomic_write_json

        self.done[key] = value
        atomic_write_json(self.path, self.done)

    def run(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``'s value, taken from an earlier run when there (with reuse), else computed,
        timed and kept."""
        if self.reuse and key in self.done:
            print(f"   reusing {key}", flush=True)
            return self.done[key]
        t0 = time.perf_counter()
        value = compute()
        print(f"   {key}: {time.perf_counter() - t0:.0f} s", flush=True)
        self.put(key, value)
        return value
