"""Shared pieces of the loaders' fuzz targets: random mutations of a JSON tree, and a watch on the
process's peak memory (the properties every loader keeps: a clean error or a network that runs,
its input unchanged, memory under the load's cap)."""

from __future__ import annotations

import contextlib
import json
import resource
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from isospike.serialize.bounds import memory_cap

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["x", "fc1", "output", "operator:add", "reshape", "Linear", "shape",
                                             "__class__", "torch:load", "1e999", "round", "zero", "auto_map", "eager",
                                             "flash_attention_2", "gelu", "add_", "inplace"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def positions(tree: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every position (path of keys and indices) in a JSON tree."""
    yield prefix
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        yield from positions(v, prefix + (k,))


def mutate(tree: Any, data: Any, values: Any = JSON_VALUES, most: int = 3) -> Any:
    """A copy of ``tree`` with 1 to ``most`` entries replaced, deleted or tweaked."""
    tree = json.loads(json.dumps(tree, allow_nan=True))
    spots = [p for p in positions(tree) if p]
    for _ in range(data.draw(st.integers(1, most))):
        path = data.draw(st.sampled_from(spots))
        parent = tree
        try:
            for key in path[:-1]:
                parent = parent[key]
            old = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # removed by an earlier mutation
        action = data.draw(st.sampled_from(["replace", "delete", "tweak"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "tweak" and isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[path[-1]] = data.draw(st.sampled_from([0, -1, 1, old * 2, old + 1, -old, 10**9, 2**62]))
        elif action == "tweak" and isinstance(old, str):
            parent[path[-1]] = old + data.draw(st.sampled_from(["_", ".x", "1", "()", "\n", " "]))
        else:
            parent[path[-1]] = data.draw(values)
    return tree


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key))
    except (OSError, StopIteration, ValueError):
        return None


def _reset_peak() -> int:
    """Start measuring the peak afresh (Linux: writing 5 to clear_refs sets VmHWM to the current
    RSS); returns the baseline in bytes. Elsewhere: the peak so far (ru_maxrss)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        rss = _status_kb("VmRSS")
        if rss is not None:
            return rss * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_bytes() -> int:
    hwm = _status_kb("VmHWM")
    return hwm * 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextlib.contextmanager
def memory_under_cap(file_bytes: int, factor: int = 4) -> Iterator[None]:
    """Fail when the block's peak memory passes what it held before by more than the load's cap
    for a file of ``file_bytes`` plus ``factor`` copies of the file (its tensors, as read and as
    built). On Linux the peak is measured afresh for the block (VmHWM after resetting it); elsewhere
    the process's peak so far can hide a block's allocations below it."""
    before = _reset_peak()
    yield
    grown = _peak_bytes() - before
    allowed = memory_cap(file_bytes) + factor * file_bytes
    assert grown <= allowed, f"the load raised the peak memory by {grown / 2**20:.0f} MiB (cap {allowed / 2**20:.0f} MiB)"
