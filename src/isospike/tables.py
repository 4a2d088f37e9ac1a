"""Plain-text and Markdown tables: one number format for every table isospike prints (reports,
certificates, energy rows, benchmarks). A leaf: it imports nothing from isospike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def fmt(v: Any) -> str:
    """A table cell, one number format everywhere: 4 significant digits with thousands separators
    (4,338; 98.00; 0.2960), scientific notation only below 0.001 or from 10^9 (2.384e-07);
    integers exact with separators (10,701)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if v == 0 or v != v or v in (float("inf"), float("-inf")):
        return "0" if v == 0 else str(v)
    if 1e-3 <= abs(v) < 1e9:
        decimals = max(0, 3 - math.floor(math.log10(abs(v))))
        return f"{v:,.{decimals}f}"
    return f"{v:.3e}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A fixed-width table for terminals."""
    cells = [list(headers)] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
