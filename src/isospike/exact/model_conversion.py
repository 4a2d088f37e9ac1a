"""``isospike.exact.convert`` and ``isospike.exact.reference``: whole models through the pinned
algorithms, computed by gate circuits or by the plain float32 reference.

Supported: Linear, Conv2d (groups 1), ReLU, GELU, SiLU, Sigmoid, Tanh, Softmax, LayerNorm,
RMSNorm, BatchNorm (eval), average/max pooling, adaptive average pooling (uniform windows),
Flatten/Unflatten/Identity/Dropout (no arithmetic), Embedding (lookup), residual additions and
other elementwise +, -, *, / between tensors, matrix products, and Hugging Face ``BertModel``
(or ``BertLayer`` inside another model). Anything else raises UnsupportedLayerError with its
path.
"""

from __future__ import annotations

import copy
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from isospike.conversion.graph import unshare_modules
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
    ExactMatmul,
    ExactPool2d,
    ExactRMSNorm,
)

CODING = "exact"
PASSTHROUGH = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Embedding)
ELEMENTWISE = {operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub",
               operator.mul: "mul", torch.mul: "mul", operator.truediv: "div", torch.div: "div",
               operator.iadd: "add"}
METHOD_ELEMENTWISE = {"add": "add", "sub": "sub", "mul": "mul", "div": "div"}
MATMUL = {operator.matmul, torch.matmul, torch.bmm}
FUNCTIONAL_ACT = {F.relu: "relu", torch.relu: "relu", F.gelu: "gelu", F.silu: "silu", torch.sigmoid: "sigmoid",
                  F.sigmoid: "sigmoid", torch.tanh: "tanh", F.tanh: "tanh", torch.exp: "exp"}
METHOD_ACT = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "exp": "exp"}
SHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.transpose, torch.permute, torch.cat, torch.stack,
                   operator.getitem, torch.squeeze, torch.unsqueeze, getattr}
SHAPE_METHODS = {"view", "reshape", "flatten", "contiguous", "size", "permute", "transpose", "unsqueeze",
                 "squeeze", "dim", "expand", "t"}


def _default_activation_kwargs(node: fx.Node) -> bool:
    """True when an activation call's keywords do not change its value: ``inplace`` (when the
    input has no other reader) and GELU's ``approximate="none"``."""
    for key, value in node.kwargs.items():
        if key == "inplace":
            if value and len(node.args[0].users) > 1:
                return False
        elif key != "approximate" or value != "none":
            return False
    return True


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


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return is_bert_layer(m) or super().is_leaf_module(m, qualname)


class ExactNetwork(nn.Module):
    """A model whose arithmetic runs through gate circuits (``arith.name == "gates"``) or the
    float32 reference (``"torch"``). Call it like the original model.

    ``layer_counts()``: per layer path, the gate activity of the last forward (gate evaluations,
    spikes, synaptic events); ``counts()``: their sum."""

    def __init__(self, body: nn.Module, arith, source: str) -> None:
        super().__init__()
        self.body = body
        self.arith = arith
        self.source = source

    def forward(self, *args: Any, **kwargs: Any):
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


def _convert(model: nn.Module, arith, count: bool) -> ExactNetwork:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
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
        elif node.op in ("call_function", "call_method"):
            target = node.target
            if node.op == "call_function" and target in ELEMENTWISE or node.op == "call_method" and target in METHOD_ELEMENTWISE:
                op = ELEMENTWISE.get(target) if node.op == "call_function" else METHOD_ELEMENTWISE[target]
                if len(node.args) != 2 or node.kwargs:
                    raise UnsupportedLayerError(str(target), node.name, CODING, "only two-operand forms are supported")
                name = add_layer(ExactElementwise(op, arith, count))
            elif node.op == "call_function" and target in MATMUL:
                name = add_layer(ExactMatmul(None, arith, count))
            elif node.op == "call_function" and target in FUNCTIONAL_ACT or node.op == "call_method" and target in METHOD_ACT:
                label = getattr(target, "__name__", str(target))
                if len(node.args) != 1 or not _default_activation_kwargs(node):
                    raise UnsupportedLayerError(label, node.name, CODING,
                                                "only the one-argument default form is supported (e.g. F.gelu(x), "
                                                "F.relu(x), x.relu())")
                op = FUNCTIONAL_ACT[target] if node.op == "call_function" else METHOD_ACT[target]
                name = add_layer(ExactFunction(op, arith, count))
                node.kwargs = {}
            elif node.op == "call_function" and target in (F.softmax, torch.softmax):
                dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else -1)
                name = add_layer(ExactFunction("softmax", arith, count, dim=dim))
                node.args, node.kwargs = node.args[:1], {}
            elif node.op == "call_function" and target in SHAPE_FUNCTIONS or node.op == "call_method" and target in SHAPE_METHODS:
                continue
            else:
                label = getattr(target, "__name__", str(target))
                raise UnsupportedLayerError(label, node.name, CODING, "no bit-exact spiking version of this operation")
            with gm.graph.inserting_after(node):
                new_node = gm.graph.call_module(name, args=tuple(node.args[:2]))
            node.replace_all_uses_with(new_node)
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    return ExactNetwork(gm, arith, type(model).__name__)


def convert(model: nn.Module, *, backend: str = "bitsliced", count: bool = True, **options: Any) -> ExactNetwork:
    """A copy of ``model`` whose every arithmetic operation is computed by integrate-and-fire
    threshold-gate circuits on spatial-bit spikes. Its outputs equal ``reference(model)``'s bit
    for bit. ``backend``/``options``: see :mod:`isospike.exact.ops` (e.g. backend="neuron",
    leak=..., noise=...). ``count``: record per-layer gate activity (``layer_counts()``)."""
    return _convert(model, GateArith(backend=backend, **options), count)


def reference(model: nn.Module) -> ExactNetwork:
    """A copy of ``model`` running the same pinned float32 operation sequence as
    :func:`convert`, in plain PyTorch: the ANN the exact SNN provably equals."""
    return _convert(model, TorchArith(), False)
