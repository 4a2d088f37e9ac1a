"""Tracing an ANN into a torch.fx graph and the graph passes every coding shares:
BatchNorm folding, turning functional ReLUs into modules, shape propagation, and which
nodes change over time once neurons are in the graph."""

from __future__ import annotations

import copy
import operator
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from isospike.errors import UnsupportedLayerError

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)


class _Tracer(fx.Tracer):
    """Keeps activations that carry a trained spiking threshold (``spike_threshold``) as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        trained = hasattr(type(m), "spike_threshold") or hasattr(type(m), "ttfs_timesteps")
        return trained or super().is_leaf_module(m, qualname)


def trace(model: nn.Module, coding: str) -> fx.GraphModule:
    """Symbolically trace ``model`` (a copy is traced; ``model`` is untouched)."""
    model = copy.deepcopy(model).eval()
    try:
        return fx.GraphModule(model, _Tracer().trace(model))
    except Exception as exc:  # fx raises many types; name the model and the fix
        raise UnsupportedLayerError(
            type(model).__name__, "<model>", coding,
            f"torch.fx could not trace its forward ({type(exc).__name__}: {exc}). "
            "Conversion needs a forward without data-dependent Python control flow; "
            "move such branches out of forward() or wrap them in a leaf module.",
        ) from exc


def node_path(node: fx.Node) -> str:
    """The dotted path of a node's module in the original model, or the node's name."""
    return str(node.target) if node.op == "call_module" else node.name


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def _set_module(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = gm.get_submodule(parent_path) if parent_path else gm
    setattr(parent, name, module)


def fold_batchnorm(gm: fx.GraphModule) -> list[tuple[str, str]]:
    """Fold every eval-mode BatchNorm that directly follows a Conv/Linear whose output feeds
    only that BatchNorm. Returns the folded (synapse path, batchnorm path) pairs.

    Unfolded BatchNorms stay in the graph as per-channel affine maps (linear, so every
    coding can keep them)."""
    folded = []
    for node in list(gm.graph.nodes):
        bn = module_of(gm, node)
        if not isinstance(bn, BN_TYPES) or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        prev = node.args[0]
        syn = module_of(gm, prev)
        if len(prev.users) != 1 or not bn.track_running_stats or bn.running_mean is None:
            continue
        if isinstance(syn, CONV_TYPES):
            fused = fuse_conv_bn_eval(syn.eval(), bn.eval())
        elif isinstance(syn, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            fused = fuse_linear_bn_eval(syn.eval(), bn.eval())
        else:
            continue
        _set_module(gm, str(prev.target), fused)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        folded.append((str(prev.target), str(node.target)))
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return folded


def relu_functions_to_modules(gm: fx.GraphModule) -> None:
    """Replace ``F.relu(x)``, ``torch.relu(x)`` and ``x.relu()`` by ``nn.ReLU`` submodules named
    after the node, so every activation is a module with a path that can be swapped."""
    for node in list(gm.graph.nodes):
        is_fn = node.op == "call_function" and node.target in RELU_FUNCTIONS
        is_method = node.op == "call_method" and node.target in ("relu", "relu_")
        if not (is_fn or is_method):
            continue
        name = node.name
        gm.add_submodule(name, nn.ReLU())
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, args=(node.args[0],))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()


def propagate_shapes(gm: fx.GraphModule, example: torch.Tensor) -> None:
    """Annotate each node with ``meta['tensor_meta']`` by running ``example`` through the graph."""
    with torch.no_grad():
        ShapeProp(gm).propagate(example)


def is_tensor_node(node: Any) -> bool:
    return isinstance(node, fx.Node) and "tensor_meta" in node.meta and hasattr(node.meta["tensor_meta"], "shape")


def input_nodes(node: fx.Node) -> list[fx.Node]:
    """The fx nodes among a node's (possibly nested) arguments."""
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return found


def time_varying_nodes(gm: fx.GraphModule, sources: Iterable[fx.Node]) -> set[fx.Node]:
    """Nodes whose value changes over time steps: the ``sources`` (neurons) and everything
    computed from them. All other nodes depend only on the (constant) input."""
    varying = set(sources)
    for node in gm.graph.nodes:
        if node in varying:
            continue
        if any(n in varying for n in input_nodes(node)):
            varying.add(node)
    return varying


# Operations that act on each sample independently and linearly, so a coding may keep them
# as they are (applied at each time step, or once on a constant input).
LINEAR_FUNCTIONS = {
    operator.add, torch.add, torch.flatten, torch.cat, torch.reshape, F.avg_pool1d, F.avg_pool2d,
    F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.linear,
    F.conv1d, F.conv2d, F.conv3d, F.dropout,
}
SHAPE_METHODS = {"view", "reshape", "flatten", "contiguous", "size", "add", "dim", "unsqueeze"}


def check_linear_glue(node: fx.Node, coding: str) -> None:
    """Raise :class:`UnsupportedLayerError` unless a call_function / call_method node is a
    per-sample linear or shape operation that the coding can keep."""
    if node.op == "call_function":
        target = node.target
        if target in LINEAR_FUNCTIONS:
            return
        if target is operator.getitem:
            if not is_tensor_node(node.args[0]):
                return  # indexing a size tuple or a module's tuple output
            idx = node.args[1]
            first = idx[0] if isinstance(idx, tuple) and idx else idx
            if isinstance(first, slice) and first == slice(None):
                return  # slices that keep the batch dimension
            raise UnsupportedLayerError(
                "getitem", node.name, coding, "indexing must keep the batch dimension (x[:, ...])"
            )
        if target in (operator.mul, operator.truediv, torch.mul):
            a, b = node.args[0], node.args[1]
            if not (is_tensor_node(a) and is_tensor_node(b)):
                return  # scaling by a constant is linear
            raise UnsupportedLayerError(
                getattr(target, "__name__", str(target)), node.name, coding,
                "the product of two activations is not linear; this coding cannot carry it",
            )
        name = getattr(target, "__name__", str(target))
        raise UnsupportedLayerError(name, node.name, coding, "this function has no spiking equivalent here")
    if node.op == "call_method":
        if node.target in SHAPE_METHODS:
            return
        raise UnsupportedLayerError(
            f"Tensor.{node.target}", node.name, coding, "this method has no spiking equivalent here"
        )
