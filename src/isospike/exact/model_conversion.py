"""``isospike.exact.convert`` and ``isospike.exact.reference``: whole models through the pinned
algorithms, computed by gate circuits or by the plain float32 reference.

Supported: Linear (and ``F.linear``), Conv2d (groups 1), ReLU, GELU (both forms), SiLU,
Sigmoid, Tanh, Softmax (also ``x.softmax(dim)``), LayerNorm, RMSNorm, BatchNorm (eval),
average/max pooling, adaptive average pooling (uniform windows), Flatten/Unflatten/Identity/
Dropout (no arithmetic), Embedding (lookup), residual additions and other elementwise
+, -, *, / between tensors or with constants, negation, matrix products (``@``, matmul, mm,
bmm), in-place forms of all of these, shape arithmetic on sizes (``B, T, D = x.shape``), and
Hugging Face ``BertModel`` (or ``BertLayer`` inside another model). Models must be float32.
Anything else raises UnsupportedLayerError with its path.
"""

from __future__ import annotations

import copy
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from isospike.conversion.graph import input_nodes, node_path, resolve_inplace, unshare_modules
from isospike.errors import UnsupportedLayerError
from isospike.exact.arith import GateArith, TorchArith
from isospike.exact.bert import ExactBertLayer, ExactBertModel, is_bert_layer, is_bert_model
from isospike.exact.counting import ExactCounts
from isospike.exact.layers import (
    ACTIVATIONS,
    ExactAdaptiveAvgPool2d,
    ExactBatchNorm,
    ExactConv2d,
    ExactElementwise,
    ExactFunction,
    ExactLayer,
    ExactLayerNorm,
    ExactLinear,
    ExactLinearFunction,
    ExactMatmul,
    ExactPool2d,
    ExactRMSNorm,
)

CODING = "exact"
PASSTHROUGH = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Embedding)
ELEMENTWISE = {operator.add: "add", torch.add: "add", operator.iadd: "add",
               operator.sub: "sub", torch.sub: "sub", operator.isub: "sub",
               operator.mul: "mul", torch.mul: "mul", operator.imul: "mul",
               operator.truediv: "div", torch.div: "div", operator.itruediv: "div"}
METHOD_ELEMENTWISE = {"add": "add", "add_": "add", "sub": "sub", "sub_": "sub", "mul": "mul", "mul_": "mul",
                      "div": "div", "div_": "div"}
MATMUL = {operator.matmul, torch.matmul, torch.mm, torch.bmm}
METHOD_MATMUL = {"matmul", "mm", "bmm"}
FUNCTIONAL_UNARY = {F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu_: "relu", F.gelu: "gelu",
                    F.silu: "silu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", torch.tanh: "tanh",
                    F.tanh: "tanh", torch.exp: "exp", operator.neg: "neg", torch.neg: "neg"}
METHOD_UNARY = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "tanh": "tanh",
                "tanh_": "tanh", "exp": "exp", "exp_": "exp", "neg": "neg", "neg_": "neg"}
# activations with an ``inplace`` flag as their second positional argument
INPLACE_FLAG_SECOND = {F.relu, F.silu}
SOFTMAX = {F.softmax, torch.softmax}
SHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.transpose, torch.permute, torch.cat, torch.stack,
                   operator.getitem, torch.squeeze, torch.unsqueeze, torch.chunk, torch.split, torch.unbind, getattr}
SHAPE_METHODS = {"view", "view_as", "reshape", "flatten", "unflatten", "contiguous", "permute", "transpose",
                 "unsqueeze", "squeeze", "expand", "expand_as", "t", "chunk", "split", "unbind"}
# nodes whose value is a Python number or size tuple, never a tensor
SCALAR_METHODS = {"size", "dim", "numel", "ndimension", "nelement"}
SCALAR_ATTRIBUTES = {"shape", "ndim"}
SCALAR_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
                     operator.pow, operator.neg, operator.pos, operator.iadd, operator.isub, operator.imul,
                     operator.itruediv, operator.ifloordiv, operator.imod, operator.ipow}
# operations whose output may share storage with their first argument
VIEW_FUNCTIONS = {operator.getitem, torch.flatten, torch.reshape, torch.transpose, torch.permute, torch.squeeze,
                  torch.unsqueeze, torch.chunk, torch.split, torch.unbind}
VIEW_METHODS = {"view", "view_as", "reshape", "flatten", "unflatten", "transpose", "permute", "unsqueeze", "squeeze",
                "expand", "expand_as", "t", "narrow", "select", "contiguous", "chunk", "split", "unbind"}
VIEW_MODULES = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)


def _module_layer(m: nn.Module, path: str, arith, count: bool) -> nn.Module:
    if isinstance(m, PASSTHROUGH):
        return m
    if isinstance(m, nn.Linear):
        return ExactLinear(m, arith, count)
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise UnsupportedLayerError("Conv2d(groups/padding_mode/string padding)", path, CODING,
                                        "only groups=1 with numeric zero padding is supported")
        return ExactConv2d(m, arith, count)
    if type(m) in ACTIVATIONS:
        name, kwargs = ACTIVATIONS[type(m)](m)
        return ExactFunction(name, arith, count, native=m, **kwargs)
    if isinstance(m, nn.LayerNorm):
        return ExactLayerNorm(m, arith, count)
    if isinstance(m, getattr(nn, "RMSNorm", ())):
        return ExactRMSNorm(m, arith, count)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        if m.running_mean is None:
            raise UnsupportedLayerError(type(m).__name__, path, CODING, "needs running statistics (track_running_stats)")
        return ExactBatchNorm(m, arith, count)
    if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
        if isinstance(m, nn.MaxPool2d) and (m.dilation not in (1, (1, 1)) or m.ceil_mode or m.return_indices):
            raise UnsupportedLayerError("MaxPool2d(dilation/ceil_mode/indices)", path, CODING, "use plain max pooling")
        if isinstance(m, nn.AvgPool2d) and (m.ceil_mode or not m.count_include_pad or m.divisor_override):
            raise UnsupportedLayerError("AvgPool2d(options)", path, CODING, "use default average pooling options")
        return ExactPool2d(m, arith, count)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return ExactAdaptiveAvgPool2d(m, arith, count)
    if is_bert_layer(m):
        return ExactBertLayer(m, arith, count)
    raise UnsupportedLayerError(type(m).__name__, path, CODING, "no bit-exact spiking version of this layer")


class _InplaceProxy(fx.Proxy):
    """A Proxy that records ``y += z`` on a tensor as ``operator.iadd(y, z)``. fx's Proxy has
    no ``__iadd__``, so Python would fall back to ``y = y + z`` and lose that the tensor other
    names refer to was overwritten. On numbers (``n += 1`` with ``n = x.size(0)``) ``+=``
    overwrites nothing, so it stays ``operator.add``."""


def _record_inplace(op):
    plain = getattr(operator, op.__name__[1:])  # iadd -> add

    def method(self, other):
        target = plain if computes_number(self.node) else op
        return self.tracer.create_proxy("call_function", target, (self, other), {})
    return method


for _op in (operator.iadd, operator.isub, operator.imul, operator.itruediv):
    setattr(_InplaceProxy, f"__{_op.__name__}__", _record_inplace(_op))


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return is_bert_layer(m) or super().is_leaf_module(m, qualname)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _InplaceProxy(node, self)


def _check_float32_model(model: nn.Module, api: str) -> None:
    """Refuse floating parameters/buffers other than float32: the pinned algorithms and their
    constants (e.g. exp's rounding trick) are float32 algorithms."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and t.dtype != torch.float32:
            raise TypeError(f"isp.exact.{api}: {name!r} is {t.dtype}, but the exact circuits and their reference are "
                            "pinned float32 algorithms; call model.float() first")


def _check_float32_inputs(args: tuple, kwargs: dict) -> None:
    """Refuse floating inputs other than float32 (integer inputs such as token ids pass)."""
    def check(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != torch.float32:
            raise TypeError(f"exact networks compute in float32, got a {v.dtype} input; pass x.float()")
        return v

    fx.node.map_aggregate((args, kwargs), check)


class ExactNetwork(nn.Module):
    """A model whose arithmetic runs through gate circuits (``arith.name == "gates"``) or the
    float32 reference (``"torch"``). Call it like the original model (float32 inputs).

    ``layer_counts()``: per layer path, the gate activity of the last forward (gate evaluations,
    spikes, synaptic events); ``counts()``: their sum."""

    def __init__(self, body: nn.Module, arith, source: str) -> None:
        super().__init__()
        self.body = body
        self.arith = arith
        self.source = source

    def forward(self, *args: Any, **kwargs: Any):
        _check_float32_inputs(args, kwargs)
        return self.body(*args, **kwargs)

    def exact_layers(self) -> dict[str, ExactLayer]:
        return {name: m for name, m in self.body.named_modules() if isinstance(m, ExactLayer)}

    def layer_counts(self) -> dict[str, ExactCounts]:
        return {name: m.last_counts for name, m in self.exact_layers().items() if m.last_counts is not None}

    def counts(self) -> ExactCounts:
        total = ExactCounts()
        for c in self.layer_counts().values():
            for op, oc in c.by_op.items():
                total.record(op, oc)
        return total

    def extra_repr(self) -> str:
        return f"arith={self.arith.name}, source={self.source}"


# ---------------------------------------------------------------- graph analysis
def _op_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return getattr(node.target, "__name__", str(node.target))


def computes_number(node: fx.Node) -> bool:
    """Whether a node's value is a Python number or size tuple: ``x.size()``, ``x.shape``,
    ``x.dim()``, ``len(x)``, indexing them, and arithmetic among them and constants. Such
    nodes stay plain Python (shape arithmetic), never gate circuits. (Recursion only follows
    indexing and arithmetic, and stops at the first operand that is not a number.)"""
    if node.op == "call_method":
        return node.target in SCALAR_METHODS
    if node.op != "call_function":
        return False
    if node.target is getattr:
        return node.args[1] in SCALAR_ATTRIBUTES
    if node.target is len:
        return True
    if node.target is operator.getitem:
        return isinstance(node.args[0], fx.Node) and computes_number(node.args[0])
    if node.target in SCALAR_ARITHMETIC:
        return all(computes_number(n) for n in input_nodes(node))
    return False


def _view_source(gm: fx.GraphModule, node: fx.Node, scalars: set[fx.Node]) -> fx.Node | None:
    """The tensor a node may be a view of (its first argument), or None."""
    if not node.args or not isinstance(node.args[0], fx.Node) or node in scalars:
        return None
    if node.op == "call_function" and node.target in VIEW_FUNCTIONS \
            or node.op == "call_method" and node.target in VIEW_METHODS \
            or node.op == "call_module" and isinstance(gm.get_submodule(str(node.target)), VIEW_MODULES):
        return node.args[0]
    return None


def _refuse_mutated_views(gm: fx.GraphModule, scalars: set[fx.Node]) -> None:
    """An in-place operation on a view also changes the tensors that share its storage; fx's
    dataflow does not show that. Refuse it when one of those tensors is read afterwards."""
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    for node in gm.graph.nodes:
        target = node.meta.get("mutates")
        if target is None:
            continue
        root = target
        while (src := _view_source(gm, root, scalars)) is not None:
            root = src
        family, frontier = {root}, [root]
        while frontier:  # every view derived from the root
            for user in frontier.pop().users:
                if user not in family and _view_source(gm, user, scalars) in family:
                    family.add(user)
                    frontier.append(user)
        late = [u for m in family - {target} for u in m.users if order[u] > order[node]]
        if late:
            raise UnsupportedLayerError(
                f"in-place {_op_name(node) if node.op != 'call_module' else node.target}", node_path(node), CODING,
                f"it overwrites a view of a tensor that {late[0].name!r} reads afterwards, which the converted graph "
                "cannot follow; use the out-of-place form (e.g. y = F.relu(y) instead of inplace=True)")


# ---------------------------------------------------------------- function and method nodes
def _refuse(node: fx.Node, hint: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(_op_name(node), node_path(node), CODING, hint)


def _elementwise(node: fx.Node, op: str, arith, count: bool) -> tuple[nn.Module, tuple]:
    if len(node.args) != 2 or node.kwargs:
        extra = ", ".join(f"{k}={v!r}" for k, v in node.kwargs.items())
        raise _refuse(node, f"only the two-operand form is supported (got extra arguments {extra or node.args[2:]}); "
                            "write the arithmetic out, e.g. x - 2 * y instead of torch.sub(x, y, alpha=2)")
    return ExactElementwise(op, arith, count), tuple(node.args)


def _matmul(node: fx.Node, arith, count: bool) -> tuple[nn.Module, tuple]:
    if len(node.args) != 2 or node.kwargs:
        raise _refuse(node, "only the two-operand form a @ b is supported (no out=)")
    return ExactMatmul(None, arith, count), tuple(node.args)


def _linear(node: fx.Node, arith, count: bool) -> tuple[nn.Module, tuple]:
    names = ("input", "weight", "bias")
    if len(node.args) > 3 or set(node.kwargs) - set(names):
        raise _refuse(node, "expected F.linear(input, weight, bias=None)")
    values = dict(zip(names, node.args)) | dict(node.kwargs)
    if "weight" not in values:
        raise _refuse(node, "expected F.linear(input, weight, bias=None)")
    return ExactLinearFunction(None, arith, count), (values["input"], values["weight"], values.get("bias"))


def _unary(node: fx.Node, name: str, arith, count: bool) -> tuple[nn.Module, tuple]:
    """Activations and negation. ``inplace`` is dropped (``resolve_inplace`` already made the
    dataflow explicit); GELU keeps ``approximate``; any other argument is refused."""
    args, kwargs = list(node.args[1:]), dict(node.kwargs)
    if args and node.op == "call_function" and node.target in INPLACE_FLAG_SECOND:
        kwargs["inplace"] = args.pop(0)
    kwargs.pop("inplace", None)
    options = {}
    if name == "gelu" and "approximate" in kwargs:
        options["approximate"] = kwargs.pop("approximate")
        if options["approximate"] not in ("none", "tanh"):
            raise _refuse(node, f"approximate must be 'none' or 'tanh', got {options['approximate']!r}")
    if args or kwargs:
        extra = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
        raise _refuse(node, f"arguments {extra} are not supported; use the one-argument form (e.g. F.gelu(x), "
                            "F.relu(x), x.relu()), plus inplace= or GELU's approximate=")
    return ExactFunction(name, arith, count, **options), (node.args[0],)


def _softmax(node: fx.Node, arith, count: bool) -> tuple[nn.Module, tuple]:
    """``F.softmax(x, dim=None, _stacklevel=3, dtype=None)``, ``torch.softmax(x, dim, dtype=None)``
    and ``x.softmax(dim, dtype=None)``; ``dim=None`` is torch's legacy implicit dimension."""
    names = ("input", "dim", "_stacklevel", "dtype") if node.target is F.softmax else ("input", "dim", "dtype")
    if len(node.args) > len(names) or set(node.kwargs) - set(names):
        raise _refuse(node, f"expected softmax({', '.join(names)})")
    values = dict(zip(names, node.args)) | dict(node.kwargs)
    dtype, dim = values.get("dtype"), values.get("dim")
    if dtype not in (None, torch.float32):
        raise _refuse(node, f"dtype={dtype} is not supported: exact networks compute in float32; drop dtype= "
                            "(or cast the result afterwards)")
    if not (dim is None or isinstance(dim, int)):
        raise _refuse(node, f"dim must be a constant int, got {dim!r}")
    return ExactFunction("softmax", arith, count, dim=dim), (values["input"],)


def _exact_node(node: fx.Node, arith, count: bool) -> tuple[nn.Module, tuple] | None:
    """The exact layer replacing a call_function / call_method node and its call arguments, or
    None for nodes that only move data or compute shapes."""
    target, is_fn = node.target, node.op == "call_function"
    if is_fn and target in ELEMENTWISE or not is_fn and target in METHOD_ELEMENTWISE:
        return _elementwise(node, ELEMENTWISE[target] if is_fn else METHOD_ELEMENTWISE[target], arith, count)
    if is_fn and target in MATMUL or not is_fn and target in METHOD_MATMUL:
        return _matmul(node, arith, count)
    if is_fn and target is F.linear:
        return _linear(node, arith, count)
    if is_fn and target in FUNCTIONAL_UNARY or not is_fn and target in METHOD_UNARY:
        return _unary(node, FUNCTIONAL_UNARY[target] if is_fn else METHOD_UNARY[target], arith, count)
    if is_fn and target in SOFTMAX or not is_fn and target == "softmax":
        return _softmax(node, arith, count)
    if is_fn and target in SHAPE_FUNCTIONS or not is_fn and target in SHAPE_METHODS:
        return None
    raise _refuse(node, "no bit-exact spiking version of this operation")


# ---------------------------------------------------------------- conversion
def _convert(model: nn.Module, arith, count: bool, api: str) -> ExactNetwork:
    if not isinstance(model, nn.Module):
        raise TypeError(f"isp.exact.{api}: model must be a torch.nn.Module, got {type(model).__name__}")
    _check_float32_model(model, api)
    model = copy.deepcopy(model).eval()
    if is_bert_model(model):
        return ExactNetwork(ExactBertModel(model, arith, count), arith, type(model).__name__)
    if is_bert_layer(model):
        return ExactNetwork(ExactBertLayer(model, arith, count), arith, type(model).__name__)
    if type(model).__module__.startswith("torch.nn.modules") and not isinstance(model, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        # a single torch layer: convert it directly (tracing would look inside it)
        return ExactNetwork(_module_layer(model, type(model).__name__, arith, count), arith, type(model).__name__)
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:
        raise UnsupportedLayerError(type(model).__name__, "<model>", CODING,
                                    f"torch.fx could not trace its forward ({type(exc).__name__}: {exc})") from exc
    gm = fx.GraphModule(model, graph)
    unshare_modules(gm)
    resolve_inplace(gm)
    scalars = {node for node in gm.graph.nodes if computes_number(node)}
    _refuse_mutated_views(gm, scalars)
    counter = 0

    def add_layer(layer: nn.Module) -> str:
        nonlocal counter
        name = f"exact_op_{counter}"
        counter += 1
        gm.add_submodule(name, layer)
        return name

    for node in list(gm.graph.nodes):
        if node.op == "call_module":
            m = gm.get_submodule(str(node.target))
            new = _module_layer(m, str(node.target), arith, count)
            if new is not m:
                parent, _, attr = str(node.target).rpartition(".")
                setattr(gm.get_submodule(parent) if parent else gm, attr, new)
        elif node.op in ("call_function", "call_method") and node not in scalars:
            replacement = _exact_node(node, arith, count)
            if replacement is None:
                continue
            layer, args = replacement
            with gm.graph.inserting_after(node):
                new_node = gm.graph.call_module(add_layer(layer), args=args)
            node.replace_all_uses_with(new_node)
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    return ExactNetwork(gm, arith, type(model).__name__)


def convert(model: nn.Module, *, backend: str = "bitsliced", count: bool = True, **options: Any) -> ExactNetwork:
    """A copy of ``model`` whose every arithmetic operation is computed by integrate-and-fire
    threshold-gate circuits on spatial-bit spikes. Its outputs equal ``reference(model)``'s bit
    for bit. ``backend``/``options``: see :mod:`isospike.exact.ops` (e.g. backend="neuron",
    leak=..., noise=...). ``count``: record per-layer gate activity (``layer_counts()``).

    ``model`` must be float32 (TypeError otherwise: call ``model.float()``), and so must the
    floating inputs of the returned network."""
    return _convert(model, GateArith(backend=backend, api="isp.exact.convert", **options), count, "convert")


def reference(model: nn.Module) -> ExactNetwork:
    """A copy of ``model`` running the same pinned float32 operation sequence as
    :func:`convert`, in plain PyTorch: the ANN the exact SNN provably equals. ``model`` and
    the floating inputs must be float32."""
    return _convert(model, TorchArith(), False, "reference")
