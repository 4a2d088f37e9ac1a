"""Tracing an ANN into a torch.fx graph and the graph passes every coding shares:
BatchNorm folding, turning functional ReLUs into modules, shape propagation, and which
nodes change over time once neurons are in the graph."""

from __future__ import annotations

import copy
import inspect
import operator
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_weights

from isospike.errors import UnsupportedLayerError

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_)


class _Tracer(fx.Tracer):
    """Keeps activations that carry a trained spiking threshold (``spike_threshold``) as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        trained = hasattr(type(m), "spike_threshold") or hasattr(type(m), "ttfs_timesteps")
        return trained or super().is_leaf_module(m, qualname)


def _refuse_hooks(model: nn.Module) -> None:
    """Forward hooks run arbitrary Python around a module; conversion replaces modules (and fx does
    not run the root's hooks), so a hooked model would convert to another function, silently."""
    for path, m in model.named_modules():
        kinds = [kind for kind, hooks in (("forward hook", m._forward_hooks), ("forward pre-hook", m._forward_pre_hooks))
                 if hooks]
        if kinds:
            raise UnsupportedLayerError(
                type(m).__name__, path or "<model>",
                hint=f"it has a {' and a '.join(kinds)} registered, which conversion cannot carry into the spiking "
                     "network; remove it (handle.remove()) before converting, or move what it computes into forward()")


def _fixed_arguments(model: nn.Module) -> dict[str, Any]:
    """forward's parameters after the input, each fixed at its default (a converted network takes one
    input tensor); a parameter without a default is refused."""
    params = list(inspect.signature(model.forward).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        raise UnsupportedLayerError(type(model).__name__, "<model>",
                                    hint="its forward takes no input tensor; a converted network is called as snn(x)")
    fixed, required = {}, []
    for p in params[1:]:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            fixed[p.name] = p.default
    if required:
        raise UnsupportedLayerError(
            type(model).__name__, "<model>",
            hint=f"its forward takes more inputs than x ({', '.join(required)}); a converted network takes one input "
                 "tensor: wrap the model in a module whose forward(x) supplies the others")
    return fixed


def _drop_specialized_placeholders(graph: fx.Graph) -> None:
    """fx keeps a placeholder and an assertion for each argument traced at a fixed value; the values
    are already inlined, so those nodes (every placeholder after the input, and what only they feed)
    are removed."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    doomed: set[fx.Node] = set()
    stack = list(placeholders[1:])
    while stack:
        n = stack.pop()
        if n not in doomed and n.op != "output":
            doomed.add(n)
            stack.extend(n.users)
    if any(user.op == "output" for n in doomed for user in n.users):
        return  # an output depends on a fixed argument itself: keep the graph as traced
    for n in reversed(list(graph.nodes)):
        if n in doomed:
            graph.erase_node(n)


def trace(model: nn.Module, coding: str = "") -> fx.GraphModule:
    """Symbolically trace ``model`` (a copy is traced; ``model`` is untouched). forward's arguments
    after the input are fixed at their defaults; models with forward hooks are refused."""
    _refuse_hooks(model)
    fixed = _fixed_arguments(model)
    model = copy.deepcopy(model).eval()
    try:
        graph = _Tracer().trace(model, concrete_args=fixed or None)
        if fixed:
            _drop_specialized_placeholders(graph)
        gm = fx.GraphModule(model, graph)
    except Exception as exc:  # fx raises many types; name the model and the fix
        raise UnsupportedLayerError(
            type(model).__name__, "<model>", coding,
            f"torch.fx could not trace its forward ({type(exc).__name__}: {exc}). "
            "Conversion needs a forward without data-dependent Python control flow; "
            "move such branches out of forward() or wrap them in a leaf module.",
        ) from exc
    unshare_modules(gm)
    resolve_inplace(gm)
    return gm


def unshare_modules(gm: fx.GraphModule) -> list[str]:
    """Give every call of a module that is called more than once (an activation reused at two
    places, shared weights) its own copy, so each call site gets its own neurons, statistics
    and counters. Copies are named ``<path>_call<k>``; returns their paths."""
    seen: set[str] = set()
    copies = []
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        path = str(node.target)
        if path not in seen:
            seen.add(path)
            continue
        k = 2
        while f"{path}_call{k}" in seen:
            k += 1
        new_path = f"{path}_call{k}"
        gm.add_submodule(new_path, copy.deepcopy(gm.get_submodule(path)))
        node.target = new_path
        seen.add(new_path)
        copies.append(new_path)
    if copies:
        gm.recompile()
    return copies


def node_path(node: fx.Node) -> str:
    """The dotted path of a node's module in the original model; for a function or method call,
    the path of the module whose forward makes it and the call's name (``enc.0 (gelu)``)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if stack:
        owner = list(stack.values())[-1]
        owner_path = owner[0] if isinstance(owner, tuple) else str(owner)
        if owner_path:
            return f"{owner_path} ({node.name})"
    return node.name


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


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
        fused: nn.Module
        if isinstance(syn, CONV_TYPES):
            fused = fuse_conv_bn_eval(syn.eval(), bn.eval())
        elif isinstance(syn, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            if bn.num_features != syn.out_features:
                continue  # a BatchNorm over another axis (e.g. [batch, channels, features]) is not per output
            mean, var = bn.running_mean, bn.running_var
            assert mean is not None and var is not None  # tracked statistics, checked above
            fused = copy.deepcopy(syn)
            # torch's fuse_linear_bn_eval needs the affine parameters; affine=False means 1 and 0
            gamma = bn.weight if bn.weight is not None else torch.ones_like(mean)
            beta = bn.bias if bn.bias is not None else torch.zeros_like(mean)
            fused.weight, fused.bias = fuse_linear_bn_weights(syn.weight, syn.bias, mean, var, bn.eps, gamma, beta)
        else:
            continue
        gm.set_submodule(str(prev.target), fused)
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
    expected = parameter_dtype(gm)
    if not isinstance(example, torch.Tensor):
        raise TypeError(f"calibration batches must be tensors, got {type(example).__name__}")
    if example.is_floating_point() and expected is not None and example.dtype != expected:
        raise TypeError(f"calibration inputs are {example.dtype} but the model is {expected}: pass x.to({expected})")
    with torch.no_grad():
        try:
            gm(example)  # a plain run first: ShapeProp would print its own traceback on failure
        except Exception as exc:
            if not example.is_floating_point():
                raise TypeError(f"the model cannot run on {example.dtype} calibration inputs ({exc}); pass floating "
                                "inputs scaled as in training, e.g. x.float()") from exc
            raise ValueError(f"the model cannot run on the calibration batch of shape {tuple(example.shape)} ({exc}); "
                             "pass calibration inputs shaped like the model's inputs, [batch, ...]") from exc
        ShapeProp(gm).propagate(example)


def parameter_dtype(module: nn.Module) -> torch.dtype | None:
    """Floating dtype of the first parameter or buffer (None for a parameter-free module)."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def is_tensor_node(node: Any) -> bool:
    return isinstance(node, fx.Node) and "tensor_meta" in node.meta and hasattr(node.meta["tensor_meta"], "shape")


def input_nodes(node: fx.Node) -> list[fx.Node]:
    """The fx nodes among a node's (possibly nested) arguments."""
    found: list[fx.Node] = []

    def collect(n: fx.Node) -> fx.Node:
        found.append(n)
        return n

    fx.node.map_arg((node.args, node.kwargs), collect)
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
LINEAR_FUNCTIONS: set[Callable[..., Any]] = {
    operator.add, torch.add, torch.flatten, torch.cat, torch.reshape, F.avg_pool1d, F.avg_pool2d,
    F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.linear,
    F.conv1d, F.conv2d, F.conv3d, F.dropout, operator.sub, torch.sub, operator.neg, torch.neg,
}
SHAPE_METHODS = {"view", "reshape", "flatten", "contiguous", "size", "add", "sub", "neg", "dim", "unsqueeze"}
# reductions and layout changes that are per-sample as long as they leave dimension 0 alone
BATCH_KEEPING_FUNCTIONS: dict[Callable[..., Any], str] = {torch.mean: "mean", torch.sum: "sum", torch.squeeze: "squeeze",
                           torch.transpose: "transpose", torch.permute: "permute"}
BATCH_KEEPING_METHODS = {"mean", "sum", "squeeze", "transpose", "permute"}
# Every function and method a converted graph may still call (what check_linear_glue lets through,
# plus the reshape that time folding writes). Saved networks are read back with these only.
KEPT_FUNCTIONS = frozenset(LINEAR_FUNCTIONS | set(BATCH_KEEPING_FUNCTIONS)
                           | {getattr, operator.getitem, operator.mul, operator.truediv, torch.mul})
KEPT_METHODS = frozenset(SHAPE_METHODS | BATCH_KEEPING_METHODS | {"mul", "div", "reshape"})


def _dims(node: fx.Node, kind: str) -> list[int] | None:
    """The dimensions a reduction / layout node touches, normalized; None when unknown."""
    args = list(node.args[1:])
    kw = node.kwargs
    if kind in ("mean", "sum", "squeeze"):
        dim = kw.get("dim", args[0] if args else None)
        if dim is None:
            return None  # all dimensions (or, for squeeze, any size-1 one): the batch too
        given = list(dim) if isinstance(dim, (tuple, list)) else [dim]
    elif kind == "transpose":
        given = [kw.get("dim0", args[0] if args else None), kw.get("dim1", args[1] if len(args) > 1 else None)]
    else:  # permute: dimension 0 must stay first
        perm = kw.get("dims", args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args)
        if not isinstance(perm, (tuple, list)):
            return None  # a permutation that is not a literal sequence: unknown
        return [0] if not perm or perm[0] not in (0, -len(perm)) else [1]
    dims = [d for d in given if isinstance(d, int)]
    if len(dims) != len(given):
        return None
    ndim = _ndim(node.args[0])
    if ndim is None:
        return None if any(d < 0 for d in dims) else dims
    return [d % ndim if d < 0 else d for d in dims]


def _keeps_batch(node: fx.Node, kind: str) -> bool:
    dims = _dims(node, kind)
    return dims is not None and 0 not in dims


def calibrated_batch(graph: fx.Graph) -> int | None:
    """Batch size of the input recorded by :func:`propagate_shapes` (None when not recorded)."""
    for node in graph.nodes:
        if node.op == "placeholder":
            meta = node.meta.get("tensor_meta")
            shape = getattr(meta, "shape", None)
            return int(shape[0]) if shape else None
    return None


def keeps_samples_apart(shape: tuple[int, ...] | torch.Size, batch: int) -> bool:
    """Whether a reshape's output ``shape`` keeps the ``batch`` samples apart: dimension 0 is the
    batch, or whole samples' rows merged into it (``[B, tokens, F] -> [B * tokens, F]``)."""
    return len(shape) > 0 and (shape[0] == batch or (len(shape) >= 2 and shape[0] % batch == 0))


def _call_name(node: fx.Node) -> str:
    """The name of a call_function / call_method node's target (``cat``, ``view``)."""
    return str(node.target) if node.op == "call_method" else getattr(node.target, "__name__", str(node.target))


def _arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    """Argument ``index`` (counting the tensor as 0) or keyword ``name`` of a call."""
    return node.kwargs.get(name, node.args[index] if len(node.args) > index else default)


def _ndim(node: Any) -> int | None:
    return len(node.meta["tensor_meta"].shape) if is_tensor_node(node) else None


def _batch_mixing(node: fx.Node) -> str | None:
    """Why a layout operation moves values between samples (None when it keeps them apart).

    Reshapes are judged from the shapes recorded at calibration: the output must keep the batch
    as dimension 0 or merge whole samples' rows into it (``[B, tokens, F] -> [B * tokens, F]``)."""
    name = _call_name(node)
    src = node.args[0] if node.args else None
    if name == "cat":
        dim = _arg(node, 1, "dim", 0)
        tensors = node.args[0] if node.args else ()
        ndim = _ndim(tensors[0]) if isinstance(tensors, (list, tuple)) and tensors else None
        if isinstance(dim, int) and (dim == 0 or (ndim is not None and dim % ndim == 0)):
            return "concatenating along dimension 0 mixes samples; concatenate features (dim=1 or later)"
        return None
    if name == "flatten":
        start = _arg(node, 1, "start_dim", 0)
        ndim = _ndim(src)
        if isinstance(start, int) and (start == 0 or (ndim is not None and start % ndim == 0)):
            return "flattening from dimension 0 merges the batch into the features; use x.flatten(1)"
        return None
    if name == "unsqueeze":
        dim = _arg(node, 1, "dim", None)
        ndim = _ndim(src)
        if isinstance(dim, int) and (dim == 0 or (ndim is not None and dim % (ndim + 1) == 0)):
            return "a new dimension 0 moves the batch; unsqueeze a later dimension"
        return None
    if name in ("view", "reshape"):
        batch = calibrated_batch(node.graph)
        out = getattr(node.meta.get("tensor_meta"), "shape", None)
        if batch is None or out is None or batch == 1:
            return None
        if keeps_samples_apart(out, batch):
            return None
        return (f"reshaping the batch of {batch} to {tuple(out)} mixes samples; keep dimension 0 the batch, "
                "e.g. x.view(x.size(0), -1)")
    return None


def _indexes_batch(node: fx.Node) -> bool:
    """Whether ``x[idx]`` selects along dimension 0 (anything but a full slice there)."""
    idx = node.args[1]
    items = idx if isinstance(idx, tuple) else (idx,)
    if not items:
        return False
    first = items[0]
    if isinstance(first, slice) and first == slice(None):
        return False
    if first is Ellipsis:
        ndim = _ndim(node.args[0])
        rest = [i for i in items[1:] if i is not None]
        return ndim is None or len(rest) >= ndim  # the ellipsis must cover dimension 0
    return True


def check_linear_glue(node: fx.Node, coding: str = "") -> None:
    """Raise :class:`UnsupportedLayerError` unless a call_function / call_method node is a
    per-sample linear or shape operation that the coding can keep."""
    mixing = _batch_mixing(node)
    if mixing is not None:
        raise UnsupportedLayerError(_call_name(node), node_path(node), coding, mixing)
    if node.op == "call_function":
        target = node.target
        if target in LINEAR_FUNCTIONS:
            return
        if target is getattr:
            return  # x.shape and friends: metadata, not arithmetic
        if target in BATCH_KEEPING_FUNCTIONS:
            if _keeps_batch(node, BATCH_KEEPING_FUNCTIONS[target]):
                return
            raise UnsupportedLayerError(target.__name__, node_path(node), coding,
                                        "it must leave the batch dimension 0 alone: name the dimensions, e.g. x.mean((2, 3))")
        if target is operator.getitem:
            if not is_tensor_node(node.args[0]):
                return  # indexing a size tuple or a module's tuple output
            if not _indexes_batch(node):
                return  # slices that keep the batch dimension
            raise UnsupportedLayerError(
                "getitem", node_path(node), coding, "indexing must keep the batch dimension (x[:, ...])"
            )
        if target in (operator.mul, operator.truediv, torch.mul):
            a, b = node.args[0], node.args[1]
            if not (is_tensor_node(a) and is_tensor_node(b)):
                return  # scaling by a constant is linear
            raise UnsupportedLayerError(
                _call_name(node), node_path(node), coding,
                "the product of two activations is not linear; this coding cannot carry it",
            )
        raise UnsupportedLayerError(_call_name(node), node_path(node), coding, "this function has no spiking equivalent here")
    if node.op == "call_method":
        if node.target in SHAPE_METHODS:
            return
        if node.target in ("mul", "div") and len(node.args) == 2 and not is_tensor_node(node.args[1]):
            return  # scaling by a constant is linear
        if node.target in BATCH_KEEPING_METHODS:
            if _keeps_batch(node, str(node.target)):
                return
            raise UnsupportedLayerError(f"Tensor.{node.target}", node_path(node), coding,
                                        "it must leave the batch dimension 0 alone: name the dimensions, e.g. x.mean((2, 3))")
        raise UnsupportedLayerError(
            f"Tensor.{node.target}", node_path(node), coding, "this method has no spiking equivalent here"
        )


def resolve_inplace(gm: fx.GraphModule) -> None:
    """Make in-place operations explicit in the dataflow: for every in-place node (``y += z``,
    ``y.relu_()``, ``F.relu(y, inplace=True)``, ``nn.ReLU(inplace=True)(y)``), the uses of ``y``
    that come after it in graph order read the node's output instead, which is the value torch
    gives them. Uses before it keep ``y``. Afterwards every node may run out of place.

    In place are: ``operator.iadd``-style operators, functions and methods whose name ends in
    ``_``, functions called with ``inplace=True`` (keyword or positional) and modules whose
    ``inplace`` attribute is true; each overwrites its first argument. ``get_attr`` nodes of
    one attribute are one tensor, so all of them are redirected. Only the dataflow inside the
    graph is resolved: a mutation of a view (``y.view(...).relu_()``) does not reach ``y``, and
    the caller's input tensors and the module's buffers are not mutated. Each in-place node
    gets ``node.meta["mutates"]`` (the node it overwrites) so a caller can refuse such cases."""
    import inspect

    operators = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv, operator.imod,
                 operator.ipow, operator.imatmul, operator.iand, operator.ior, operator.ixor, operator.ilshift,
                 operator.irshift}

    def is_inplace(node: fx.Node) -> bool:
        if not node.args or not isinstance(node.args[0], fx.Node):
            return False
        if node.op == "call_method":
            return str(node.target).endswith("_") and not str(node.target).startswith("_")
        if node.op == "call_module":
            return getattr(gm.get_submodule(str(node.target)), "inplace", False) is True
        if node.op != "call_function":
            return False
        if node.target in operators:
            return True
        if getattr(node.target, "__module__", None) in ("operator", "_operator"):
            return False  # operator.and_ / or_ are not in place
        if getattr(node.target, "__name__", "").endswith("_"):
            return True
        assert callable(node.target)  # fx checks that a call_function node's target is callable
        try:
            return bool(inspect.signature(node.target).bind(*node.args, **node.kwargs).arguments.get("inplace"))
        except (TypeError, ValueError):  # builtins without a signature, or arguments that do not bind
            return bool(node.kwargs.get("inplace", False))

    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    changed = False
    for node in list(gm.graph.nodes):
        if not is_inplace(node):
            continue
        target = node.args[0]
        node.meta["mutates"] = target
        aliases = [target]
        if target.op == "get_attr":
            aliases = [n for n in gm.graph.nodes if n.op == "get_attr" and n.target == target.target]
        for alias in aliases:
            for user in list(alias.users):
                if user is not node and order[user] > order[node]:
                    user.replace_input_with(alias, node)
                    changed = True
    if changed:
        gm.graph.lint()
        gm.recompile()
