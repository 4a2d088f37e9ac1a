"""A Griffe extension for the API reference (``mkdocs.yml``: ``extensions``): the docstrings'
Sphinx-style roles (``:func:`isospike.convert```, ``:class:`~isospike.Certificate```) become
links to the documented object where the API pages render it, and inline code otherwise -- never
the raw role text. ``~`` shows the last component only, as Sphinx does; a name without dots is
looked up in the docstring's own module first."""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|data|mod|obj|exc|const):`(~?)([^`<>]+?)(?:\(\))?`")


def rewrite(text: str, module: str) -> str:
    """``text`` with every role replaced by an optional autorefs link around inline code."""

    def replace(match: re.Match[str]) -> str:
        short, target = match.group(1) == "~", match.group(2).strip()
        shown = target.rsplit(".", 1)[-1] if short else target
        identifier = target if "." in target or not module else f"{module}.{target}"
        # optional: an object the API pages do not render is shown as code, without a warning
        return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

    return ROLE.sub(replace, text)


class SphinxRoles(Extension):
    """Rewrite the roles of every docstring once the package is loaded."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            module = obj.module.path if obj.is_module or obj.parent is not None else ""
            obj.docstring.value = rewrite(obj.docstring.value, module)
