"""Progress display for long exact runs (a large model through the gates takes seconds per
token): one ``tqdm`` bar per converted network counting gate evaluations (its rate is the
engine's speed) with the forward call (the token, when generating) in its description.

Off by default; ``isospike.exact.convert(model, progress=True)`` or the environment variable
``ISOSPIKE_EXACT_PROGRESS=1`` turns it on."""

from __future__ import annotations

import os
import weakref
from typing import Any

ENV = "ISOSPIKE_EXACT_PROGRESS"


def wanted(progress: bool | None) -> bool:
    """``progress``, or the environment variable when it is None."""
    if progress is None:
        return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")
    return bool(progress)


class Progress:
    """The bar of one network: :meth:`call` at each forward, :meth:`gates` after each operation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.bar: Any = None

    def call(self) -> None:
        from tqdm.auto import tqdm

        self.calls += 1
        if self.bar is None:
            self.bar = tqdm(unit=" gate evaluations", unit_scale=True, dynamic_ncols=True, mininterval=0.5)
        self.bar.set_description(f"exact {self.name}: forward {self.calls}", refresh=False)

    def gates(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


_BARS: weakref.WeakKeyDictionary[Any, Progress] = weakref.WeakKeyDictionary()


def progress_of(net: Any) -> Progress:
    """The bar of ``net`` (made on first use; closed when ``net`` is collected)."""
    bar = _BARS.get(net)
    if bar is None:
        bar = _BARS[net] = Progress(type(net).__name__)
        weakref.finalize(net, bar.close)
    return bar
