"""The dataflow graph of a saved network, written as JSON and read back into a ``torch.fx`` graph
without letting the file name anything outside a closed set.

``torch.fx`` turns a graph into Python source. So every string of a file that could reach that
source is checked first: node names, placeholder names and keyword names must be plain
identifiers; a module call must name a module the file itself declares; a function call must be
one of :data:`FUNCTIONS` (looked up in that table, never imported or found by attribute walks); a
method call one of :data:`METHODS`; ``getattr`` only reads :data:`ATTRIBUTES`; dtypes come from
:data:`DTYPES`. Constants are numbers, booleans, None and strings (which fx writes with ``repr``).

What the graph computes is bounded too (:mod:`isospike.serialize.graph_values`): every call is
pure (no ``out=``, no in-place work, no random draws: a loaded network never changes its input or
its own tensors), and Python arithmetic on shapes cannot grow without bound.
"""

from __future__ import annotations

import builtins
import inspect
import math
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx
from torch.fx.passes.shape_prop import TensorMetadata

from isospike.conversion.graph import KEPT_FUNCTIONS, KEPT_METHODS
from isospike.conversion.network import TIMESTEPS_INPUT
from isospike.errors import FileFormatError
from isospike.schema import MAX_DEPTH, Field, is_identifier
from isospike.serialize.graph_values import TENSOR, Value, check_pure, constant, infer

# Where a kept function is found, in the order its name is looked up (the name a file uses is
# "<module>:<name>", as in format 1 files).
_HOMES: tuple[tuple[str, Any], ...] = (("operator", operator), ("torch.nn.functional", F), ("torch", torch),
                                       ("builtins", builtins))


def _qualified(fn: Callable) -> str:
    name = getattr(fn, "__name__", "")
    for home, module in _HOMES:
        if name and getattr(module, name, None) is fn:
            return f"{home}:{name}"
    raise TypeError(f"no saved name for {fn!r}")


# What the source model of a saved exact network (isospike.serialize.exact) may call besides:
# pure tensor operations (no file, device, global state, RNG or size-from-a-constant allocation).
SOURCE_FUNCTIONS: frozenset[Callable] = frozenset({
    operator.matmul, operator.pow, operator.floordiv, torch.matmul, torch.bmm, torch.softmax, torch.log_softmax,
    torch.relu, torch.sigmoid, torch.tanh, torch.exp, torch.sqrt, torch.rsqrt, torch.abs, torch.erf, torch.maximum,
    torch.minimum, torch.clamp, torch.where, torch.stack, torch.chunk, torch.split, torch.unsqueeze, torch.div,
    F.gelu, F.relu, F.silu, F.softmax, F.log_softmax, F.layer_norm, F.rms_norm, F.group_norm, F.embedding, F.sigmoid,
    F.tanh, F.leaky_relu, F.scaled_dot_product_attention, F.max_pool1d, F.max_pool2d, F.normalize})
SOURCE_METHODS = frozenset({
    "matmul", "bmm", "softmax", "log_softmax", "t", "chunk", "split", "unbind", "exp", "sqrt", "rsqrt", "pow", "abs",
    "relu", "sigmoid", "tanh", "erf", "clamp", "clamp_min", "clamp_max", "float", "type_as", "masked_fill", "amax",
    "amin", "view_as", "reshape_as", "var"})
FUNCTIONS: dict[str, Callable] = {_qualified(fn): fn for fn in KEPT_FUNCTIONS | SOURCE_FUNCTIONS}
_NAMES = {fn: name for name, fn in FUNCTIONS.items()}
METHODS: frozenset[str] = frozenset(KEPT_METHODS | SOURCE_METHODS)
ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "T", "mT"})
DTYPES: dict[str, torch.dtype] = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8,
    torch.uint8, torch.bool)}
MAX_NODES = 200_000
_OPS = ("placeholder", "output", "call_module", "call_method", "call_function", "get_attr")


# ------------------------------------------------------------------------- writing
def _write_arg(a: Any) -> Any:
    if isinstance(a, fx.Node):
        return {"node": a.name}
    if isinstance(a, (list, tuple)):
        return {"seq": [_write_arg(x) for x in a], "tuple": isinstance(a, tuple)}
    if isinstance(a, dict):
        return {"dict": {k: _write_arg(v) for k, v in a.items()}}
    if isinstance(a, slice):
        return {"slice": [_write_arg(a.start), _write_arg(a.stop), _write_arg(a.step)]}
    if isinstance(a, torch.dtype):
        return {"dtype": str(a).removeprefix("torch.")}
    if a is Ellipsis:
        return {"ellipsis": True}
    if isinstance(a, float) and not math.isfinite(a):
        return {"float": repr(a)}
    if a is None or isinstance(a, (bool, int, float, str)):
        return a
    raise TypeError(f"cannot save a graph argument of type {type(a).__name__}")


def _write_meta(node: fx.Node) -> dict[str, Any] | None:
    meta = node.meta.get("tensor_meta")
    if not isinstance(meta, TensorMetadata):
        return None
    return {"shape": [int(s) for s in meta.shape], "dtype": str(meta.dtype).removeprefix("torch.")}


def write_graph(gm: fx.GraphModule) -> list[dict[str, Any]]:
    """The nodes of ``gm``'s graph as JSON records (op, name, target, args, kwargs, and the tensor
    shape recorded at calibration when there is one)."""
    nodes = []
    for n in gm.graph.nodes:
        target: Any = n.target
        if n.op == "call_function":
            if n.target not in _NAMES:
                raise TypeError(f"cannot save a call to {getattr(n.target, '__name__', n.target)!r}: a saved network "
                                f"holds only the operations conversion keeps ({', '.join(sorted(FUNCTIONS))})")
            target = _NAMES[n.target]
        elif n.op == "call_method" and n.target not in METHODS:
            raise TypeError(f"cannot save a call of the method {n.target!r}: a saved network holds only the methods "
                            f"conversion keeps ({', '.join(sorted(METHODS))})")
        record = {"op": n.op, "name": n.name, "target": str(target), "args": _write_arg(tuple(n.args)),
                  "kwargs": _write_arg(dict(n.kwargs))}
        meta = _write_meta(n)
        if meta is not None:
            record["meta"] = meta
        nodes.append(record)
    return nodes


# ------------------------------------------------------------------------- reading
class _Reader:
    """Reads node records in order into an fx graph, checking every name against closed sets."""

    def __init__(self, modules: set[str], attrs: set[str]) -> None:
        self.graph = fx.Graph()
        self.env: dict[str, fx.Node] = {}
        self.values: dict[fx.Node, Value] = {}  # what each node may hold (isospike.serialize.graph_values)
        self.modules = modules
        self.attrs = attrs

    def arg(self, f: Field, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise f.error(f"an argument nested at most {MAX_DEPTH} levels deep")
        v = f.value
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            return f.number()
        if not isinstance(v, dict) or len(v) not in (1, 2):
            raise f.error("a constant, a node reference, a sequence, a mapping, a slice or a dtype")
        if "node" in v:
            name = f["node"].value
            if not isinstance(name, str) or name not in self.env:
                raise f.error("a reference to an earlier node of the graph")
            return self.env[name]
        if "seq" in v:
            f.object({"seq", "tuple"})
            seq = [self.arg(x, depth + 1) for x in f["seq"].items(max_len=1_000_000)]
            return tuple(seq) if f["tuple"].boolean() else seq
        if "dict" in v:
            f.object({"dict"})
            return {_key(entry, k): self.arg(entry, depth + 1) for k, entry in f["dict"].object().items()}
        if "slice" in v:
            f.object({"slice"})
            parts = list(f["slice"].items(max_len=3))
            if len(parts) != 3:
                raise f["slice"].error("[start, stop, step]")
            return slice(*(self.arg(p, depth + 1) for p in parts))
        if "dtype" in v:
            return DTYPES[f.object({"dtype"})["dtype"].choice(tuple(DTYPES))]
        if "ellipsis" in v:
            f.object({"ellipsis"})
            return Ellipsis
        if "float" in v:
            return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}[f.object({"float"})["float"].choice(
                ("inf", "-inf", "nan"))]
        raise f.error("a constant, a node reference, a sequence, a mapping, a slice or a dtype")

    def node(self, f: Field) -> fx.Node:
        rec = f.object({"op", "name", "target", "args", "kwargs", "meta"})
        op = rec["op"].choice(_OPS)
        name = rec["name"].identifier()
        if name in self.env:
            raise rec["name"].error("a name not used by an earlier node")
        args = self.arg(rec["args"])
        kwargs = self.arg(rec["kwargs"])
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise f.error("a node whose args are a tuple and kwargs a mapping")
        target_field = rec["target"]
        target: Any
        if op == "placeholder":
            target = target_field.identifier()
            default = args[0] if args else inspect.Signature.empty
            if len(args) > 1 or isinstance(default, (fx.Node, list, tuple, dict, slice)):
                raise rec["args"].error("at most one constant default value")
            args = ()
        elif op == "output":
            target = "output"
            if len(args) != 1 or kwargs or not _holds_node(args[0]):
                raise rec["args"].error("the one value the graph returns: a node, or a sequence or mapping of them")
        elif op == "call_module":
            target = target_field.module_path()
            if target not in self.modules:
                raise target_field.error(f"one of the modules the file declares ({len(self.modules)} of them)")
            steps = self.env.get(TIMESTEPS_INPUT)
            if not 1 <= len(args) <= 2 or not isinstance(args[0], fx.Node) or kwargs \
                    or (len(args) == 2 and (steps is None or args[1] is not steps)):
                raise rec["args"].error("one node, and the 'timesteps' input for time-folded modules (a module of a "
                                        "converted network takes one tensor)")
        elif op == "get_attr":
            target = target_field.module_path()
            if target not in self.attrs:
                raise target_field.error("one of the tensors the file declares under 'attrs'")
            if args or kwargs:
                raise rec["args"].error("empty")
        elif op == "call_method":
            target = target_field.choice(sorted(METHODS), "tensor methods a converted network may call")
            if not args or not isinstance(args[0], fx.Node):
                raise rec["args"].error("a node first (the tensor whose method is called)")
            check_pure(target, args, kwargs, rec["kwargs"])
        else:
            target = FUNCTIONS[target_field.choice(sorted(FUNCTIONS), "functions a converted network may call")]
            _check_call(target, args, kwargs, rec["args"])
            check_pure(target, args, kwargs, rec["args"])
        if op == "placeholder":
            node = self.graph.placeholder(target, default_value=default)
        else:
            node = self.graph.create_node(op, target, args, kwargs, name=name)
        meta = rec.get("meta")
        if meta is not None:
            node.meta["tensor_meta"] = _read_meta(meta)
        if op == "placeholder":  # the input, or an argument left at its (constant) default
            self.values[node] = TENSOR if default is inspect.Signature.empty else constant(default, self.values)
        else:
            self.values[node] = infer(op, target, args, kwargs, self.values, f)
        self.env[name] = node
        return node


_OPERATOR_ARITY = {operator.add: 2, operator.sub: 2, operator.mul: 2, operator.truediv: 2, operator.getitem: 2,
                   operator.neg: 1, operator.matmul: 2, operator.pow: 2, operator.floordiv: 2}
MAX_EXPONENT = 64  # operator.pow: a node to a constant power of at most this size (2 ** shape never)


def _check_call(fn: Callable, args: tuple, kwargs: dict, f: Field) -> None:
    """The shape of a function call's arguments: operators with their arity and a node among them,
    getattr of a node and a listed attribute, torch functions with a tensor (or tensors) first."""
    def is_nodes(a: Any) -> bool:
        return isinstance(a, fx.Node) or (isinstance(a, (list, tuple)) and bool(a)
                                          and all(isinstance(x, fx.Node) for x in a))

    if fn is getattr:
        if len(args) != 2 or kwargs or not isinstance(args[0], fx.Node) or args[1] not in ATTRIBUTES:
            raise f.error(f"(node, attribute) with the attribute one of {sorted(ATTRIBUTES)}")
    elif fn is operator.pow:
        if len(args) != 2 or kwargs or not isinstance(args[0], fx.Node) or isinstance(args[1], bool) \
                or not isinstance(args[1], (int, float)) or not abs(args[1]) <= MAX_EXPONENT:
            raise f.error(f"(node, constant exponent of magnitude at most {MAX_EXPONENT})")
    elif fn in _OPERATOR_ARITY:
        if len(args) != _OPERATOR_ARITY[fn] or kwargs or not any(isinstance(a, fx.Node) for a in args):
            raise f.error(f"{_OPERATOR_ARITY[fn]} operand(s), a node among them")
    elif not args or not is_nodes(args[0]):
        raise f.error("a node (or a list of nodes) first")


def _holds_node(value: Any) -> bool:
    """Whether a returned value holds a node (a graph returning only constants computes nothing)."""
    if isinstance(value, fx.Node):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_node(v) for v in value)
    return isinstance(value, dict) and any(_holds_node(v) for v in value.values())


def _key(f: Field, key: str) -> str:
    if not is_identifier(key):
        raise FileFormatError(f"{f.source}: the keyword {key[:60]!r} at {f.where} is not a plain identifier")
    return key


def _read_meta(f: Field) -> TensorMetadata:
    m = f.object({"shape", "dtype"})
    shape = torch.Size(m["shape"].integers(None, 0, 2**40))
    stride = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    return TensorMetadata(shape=shape, dtype=DTYPES[m["dtype"].choice(tuple(DTYPES))], requires_grad=False,
                          stride=stride, memory_format=None, is_quantized=False, qparams={})


def read_graph(f: Field, modules: set[str], attrs: set[str]) -> fx.Graph:
    """The fx graph a file describes; ``modules`` and ``attrs`` are the (validated) module paths
    and tensor attributes the file declares, the only ones its nodes may name."""
    reader = _Reader(modules, attrs)
    outputs = 0
    for rec in f.items(max_len=MAX_NODES):
        node = reader.node(rec)
        outputs += node.op == "output"
    if outputs != 1:
        raise f.error("a graph with exactly one output node")

    try:
        reader.graph.lint()
    except RuntimeError as exc:
        raise FileFormatError(f"{f.source}: the graph in field {f.where} is inconsistent ({exc})") from None
    return reader.graph
