"""What NIR's two tables share: :mod:`.exporters` (module type -> NIR node) and :mod:`.builders`
(NIR node type -> module), both looked up by :func:`by_class`."""

from __future__ import annotations

from typing import TypeVar

META = "isospike"  # the key of isospike's metadata in NIR nodes and graphs
# Largest input (values per sample) a NIR graph may declare: its shapes are propagated with one sample.
MAX_INPUT_VALUES = 2**26

T = TypeVar("T")


def by_class(table: dict[type, T], cls: type) -> T | None:
    """The entry of ``cls``'s most specific class in ``table``: a subclass finds its base's entry,
    as ``isinstance`` would."""
    return next((table[c] for c in cls.__mro__ if c in table), None)
