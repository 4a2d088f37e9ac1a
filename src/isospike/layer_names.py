"""Layers named for people: a layer's dotted path in the network with what it is, e.g.
``features.3 (Conv2d synapses)``, ``2 (IF neurons)``, ``fc1 (Linear)`` -- for reports, tables and
plots, where a bare path of an ``nn.Sequential`` (``2``, ``5``) reads like a node number."""

from __future__ import annotations

from torch import nn


def describe_layer(net: nn.Module, path: str) -> str:
    """What the layer at ``path`` of ``net`` is ("Conv2d synapses", "IF neurons", "Linear"), or
    "" when ``net`` has no such submodule (e.g. the root of an exact network)."""
    net = getattr(net, "_orig_mod", net)
    module = None
    for owner in (getattr(net, "graph_module", None), net, getattr(net, "model", None)):
        if isinstance(owner, nn.Module) and path:
            try:
                module = owner.get_submodule(path)
            except AttributeError:
                continue
            break
    if module is None:
        return ""
    inner = getattr(module, "layer", None)
    if isinstance(inner, nn.Module):
        return f"{type(inner).__name__} synapses"
    label = getattr(module, "label", None)
    return label if isinstance(label, str) and label else type(module).__name__


def layer_label(net: nn.Module | None, path: str) -> str:
    """``path`` with what it is: ``"3 (Conv2d synapses)"``; the bare path when unknown."""
    what = describe_layer(net, path) if net is not None else ""
    return f"{path} ({what})" if what else path


def layer_labels(net: nn.Module, paths: list[str]) -> dict[str, str]:
    """:func:`layer_label` for each path (a mapping reports keep next to the rows they name)."""
    return {p: layer_label(net, p) for p in paths}
