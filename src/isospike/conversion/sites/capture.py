"""Reading any eager model's forward for the codings with time: a Python-level function mode
(above autograd) that finds every weight-bearing operation as the model runs it.

Each call of a linear map whose other operand is a weight -- ``F.linear`` (``nn.Linear``, LM
heads), ``torch.addmm`` (GPT-2's ``Conv1D``), ``matmul`` / ``@`` / ``mm`` / ``bmm`` with a weight,
``F.conv1d/2d/3d`` -- is a **site**: its activation operand is what the coding carries, by a
spiking population, into the operation's synapses. A site is named by the path of the module
running it (``transformer.h.0.attn.c_attn``), with ``#k`` for the k-th further call of that
module within one forward. An operand that is one of the model's own input tensors is not coded
(direct input, as the first layer of a converted CNN: multiply-accumulates). A weight is any
tensor sharing storage with a parameter of the model (views and slices of weights included).

Products of two activations (attention's Q K^T and P V, scaled-dot-product attention) follow the
coding's rule: ``"digital"`` computes them as they are (counted as multiply-accumulates),
``"coded"`` codes both operands at their own sites (``<path>.product#k.a`` / ``.b``),
``"binary"`` (Otters' 1-bit K and V) codes the left operand at its site (``<path>.product#k.a``:
Q, the attention probabilities) and binarizes the right one (K^T, V) per head vector --
``sign(b) * mean|b|`` over its feature axis (:func:`binarize_per_head`), straight-through
gradient -- so each spike of the left operand drives sign-selected additions.
Everything else -- softmax, norms, GELU / SiLU, RoPE, residual additions, embedding lookups --
runs as it is; while observed it is counted as digital, non-spiking work (one operation per
element produced). A contraction this mode cannot carry with a weight operand (``einsum``,
``tensordot``, ``bilinear``, ``baddbmm``, ``mv``, transposed convolutions, ...) is refused with an
:class:`~isospike.errors.UnsupportedLayerError` naming the function, the module and the fix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from isospike.errors import UnsupportedLayerError


class SiteHost(Protocol):
    """What a capture reads of the network it runs (a
    :class:`~isospike.conversion.sites.network.CodedNetwork`)."""

    coding: str
    coded_products: str
    path_of: dict[int, str]

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def site_module(self, name: str) -> nn.Module: ...

# function -> the kind of weight operation; the operand order is read per kind in _operands
WEIGHT_OPS: dict[Any, str] = {
    F.linear: "linear", torch.addmm: "addmm", torch.Tensor.addmm: "addmm_method",
    torch.matmul: "matmul", torch.Tensor.matmul: "matmul", torch.Tensor.__matmul__: "matmul",
    torch.Tensor.__rmatmul__: "rmatmul", torch.mm: "matmul", torch.Tensor.mm: "matmul",
    torch.bmm: "matmul", torch.Tensor.bmm: "matmul",
    F.conv1d: "conv", F.conv2d: "conv", F.conv3d: "conv",
}
# contractions a site cannot be read from when a weight takes part: refused, with the fix
UNCARRIED: dict[Any, str] = {
    torch.einsum: "torch.einsum", torch.tensordot: "torch.tensordot", F.bilinear: "F.bilinear",
    torch.baddbmm: "torch.baddbmm", torch.Tensor.baddbmm: "Tensor.baddbmm", torch.addbmm: "torch.addbmm",
    torch.addmv: "torch.addmv", torch.mv: "torch.mv", torch.Tensor.mv: "Tensor.mv", torch.inner: "torch.inner",
    torch.outer: "torch.outer", torch.dot: "torch.dot", torch.Tensor.dot: "Tensor.dot",
    F.conv_transpose1d: "F.conv_transpose1d", F.conv_transpose2d: "F.conv_transpose2d",
    F.conv_transpose3d: "F.conv_transpose3d", torch.chain_matmul: "torch.chain_matmul",
    torch.linalg.multi_dot: "torch.linalg.multi_dot",
}
ATTENTION = F.scaled_dot_product_attention
# functions that move, view, look up or create values without computing on them (not counted)
DATA_MOVEMENT = frozenset({
    "view", "reshape", "transpose", "permute", "contiguous", "size", "__get__", "__getitem__", "__setitem__",
    "unsqueeze", "squeeze", "flatten", "unflatten", "expand", "expand_as", "to", "cat", "concat", "concatenate",
    "stack", "split", "chunk", "unbind", "tensor", "as_tensor", "arange", "zeros", "ones", "full", "empty",
    "zeros_like", "ones_like", "full_like", "empty_like", "new_zeros", "new_ones", "new_full", "new_empty",
    "new_tensor", "clone", "detach", "type_as", "type", "float", "double", "half", "bfloat16", "embedding", "dropout",
    "_set_grad_enabled", "repeat", "repeat_interleave", "narrow", "select", "index_select", "gather", "tril", "triu",
    "roll", "flip", "t", "movedim", "view_as", "reshape_as", "dim", "numel", "__len__", "masked_fill", "where",
    "copy_", "fill_", "zero_", "requires_grad_", "cpu", "cuda", "element_size", "stride", "storage_offset",
    "is_floating_point", "is_contiguous", "data_ptr", "untyped_storage", "dtype", "device", "shape", "__iter__",
    "__bool__", "__index__", "item", "tolist", "long", "int", "bool", "__format__", "__repr__",
    "broadcast_to", "broadcast_tensors", "split_with_sizes", "diagonal", "slice_scatter", "index", "take",
    "masked_select", "nonzero", "argmax", "argmin", "topk", "sort", "cumsum", "eq", "ne", "lt", "le", "gt", "ge",
})

_local = threading.local()


def active_site_capture() -> SiteCapture | None:
    return getattr(_local, "capture", None)


def _name(func: Any) -> str:
    return str(getattr(func, "__name__", "") or getattr(func, "__qualname__", "")).split(".")[-1]


class SiteCapture(TorchFunctionMode):
    """Runs a :class:`~isospike.conversion.sites.network.CodedNetwork`'s forward: each site's
    operand goes through ``net``'s site module (its population, or its quantizer for the
    equivalent network), or is sampled (``record(name, channel axis, x)`` during calibration). ``inputs``: ids of the
    forward's own input tensors. ``sink``: while a network is observed, receives the rows."""

    def __init__(self, net: SiteHost, inputs: set[int], record: Callable[[str, int | None, Tensor], None] | None = None,
                 sink: Callable[[Any], None] | None = None) -> None:
        super().__init__()
        self.net = net
        self.inputs = inputs
        self.record = record
        self.sink = sink
        self.weights = {p.untyped_storage().data_ptr() for p in net.parameters() if p.numel()}
        self.paths: list[str] = []
        self.calls: dict[str, int] = {}
        self.refused: UnsupportedLayerError | None = None

    # ------------------------------------------------------------------ module stack
    def __enter__(self) -> SiteCapture:
        self._outer = active_site_capture()
        _local.capture = self
        return super().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        _local.capture = self._outer
        return super().__exit__(*exc)

    @property
    def path(self) -> str:
        return self.paths[-1] if self.paths else ""

    def site_name(self, suffix: str = "") -> str:
        base = (self.path or "<model>") + suffix
        k = self.calls.get(base, 0)
        self.calls[base] = k + 1
        return base if k == 0 else f"{base}#{k}"

    def is_weight(self, t: Any) -> bool:
        return isinstance(t, Tensor) and t.numel() > 0 and t.untyped_storage().data_ptr() in self.weights

    # ------------------------------------------------------------------ dispatch
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        kind = WEIGHT_OPS.get(func)
        if kind is not None:
            found = self._read_operands(kind, args, kwargs)
            if isinstance(found, str):  # "product"
                return self._product(func, args, kwargs, kind)
            if found is not None:
                index, x, w, side = found
                return self._site(func, _geometry(kind, side, args, kwargs), args, kwargs, index, x, w)
        elif func in UNCARRIED:
            from torch.utils._pytree import tree_flatten

            if any(self.is_weight(t) for t in tree_flatten((args, kwargs))[0]):
                raise self.refusal(UNCARRIED[func], "a weight takes part in this contraction, which no coding reads a "
                                   "site from; compute it with nn.Linear / nn.Conv (or F.linear, x @ W)")
        elif func is ATTENTION:
            return self._attention(args, kwargs)
        out = func(*args, **kwargs)
        if self.sink is not None and isinstance(out, Tensor) and out.is_floating_point() \
                and _name(func) not in DATA_MOVEMENT:
            self.sink(("digital", self.path, out.numel(), _rows(out)))
        return out

    def _read_operands(self, kind: str, args: tuple, kwargs: dict
                       ) -> tuple[int | str, Tensor, Tensor, str] | str | None:
        """(where the coded operand is, the operand, the weight, which side the weight is on:
        "right" for x @ W, "left" for W @ x) of a weight operation; "product" for a product of two
        activations; None when neither (two weights, or not tensors)."""
        if kind in ("linear", "conv"):
            x = args[0] if args else kwargs.get("input")
            w = args[1] if len(args) > 1 else kwargs.get("weight")
            index: int | str = 0 if args else "input"
            if isinstance(x, Tensor) and isinstance(w, Tensor) and self.is_weight(w) and not self.is_weight(x):
                return index, x, w, "right"
            return None
        if len(args) < (3 if kind.startswith("addmm") else 2):
            return None
        if kind.startswith("addmm"):  # addmm(bias, left, right): GPT-2's Conv1D is x @ W + b
            positions = (1, 2)
        elif kind == "rmatmul":  # a.__rmatmul__(b) is b @ a
            positions = (1, 0)
        else:
            positions = (0, 1)
        left, right = args[positions[0]], args[positions[1]]
        if not (isinstance(left, Tensor) and isinstance(right, Tensor)):
            return None
        lw, rw = self.is_weight(left), self.is_weight(right)
        if rw and not lw:
            return positions[0], left, right, "right"
        if lw and not rw:
            return positions[1], right, left, "left"
        if not lw and not rw and not kind.startswith("addmm"):
            return "product"
        return None

    def _site(self, func: Any, geometry: tuple, args: tuple, kwargs: dict, index: int | str, x: Tensor,
              w: Tensor) -> Any:
        if id(x) in self.inputs:  # the model's own input: direct (analog) input, not coded
            out = func(*args, **kwargs)
            if self.sink is not None:
                self.sink(("input", self.path, geometry, x, w, out))
            return out
        name = self.site_name()
        if self.record is not None:
            self.record(name, _channel_axis(geometry), x)
            return func(*args, **kwargs)
        module = self.net.site_module(name)
        coded = module(x)
        args, kwargs = _replace(args, kwargs, index, coded)
        out = func(*args, **kwargs)
        if self.sink is not None:
            self.sink(("site", name, module, x, coded, geometry, w, out))
        return out

    def _product(self, func: Any, args: tuple, kwargs: dict, kind: str) -> Any:
        """A product of two activations: digital, both operands coded, or the left one coded and
        the right one binarized per head vector (the coding's rule)."""
        a, b = (args[1], args[0]) if kind == "rmatmul" else (args[0], args[1])
        if self.net.coded_products == "binary":
            return self._binary_product(func, args, kwargs, kind, a, b)
        if self.net.coded_products == "coded":
            base = self.site_name(".product")
            for tag, idx, value in (("a", 1 if kind == "rmatmul" else 0, a), ("b", 0 if kind == "rmatmul" else 1, b)):
                if self.record is not None:
                    # no channel axis: an operand's contracted axis can be the keys' positions (P V), and no
                    # weight takes a per-channel scale; operands keep one span per site
                    self.record(f"{base}.{tag}", None, value)
                else:
                    module = self.net.site_module(f"{base}.{tag}")
                    coded = module(value)
                    if self.sink is not None:
                        self.sink(("operand", f"{base}.{tag}", module, value, coded))
                    args, kwargs = _replace(args, kwargs, idx, coded)
        out = func(*args, **kwargs)
        if self.sink is not None:
            self.sink(("product", self.path, _macs(a, b, out), _rows(out)))
        return out

    def _binary_product(self, func: Any, args: tuple, kwargs: dict, kind: str, a: Tensor, b: Tensor) -> Any:
        """Otters' attention product: the left operand coded at ``<path>.product#k.a``, the right
        one binarized per head vector (sign times the mean magnitude over its feature axis)."""
        base = self.site_name(".product")
        ia, ib = (1, 0) if kind == "rmatmul" else (0, 1)
        axis = feature_axis(b)
        binary = binarize_per_head(b, axis)
        args, kwargs = _replace(args, kwargs, ib, binary)
        if self.record is not None:
            self.record(f"{base}.a", None, a)
            return func(*args, **kwargs)
        module = self.net.site_module(f"{base}.a")
        coded = module(a)
        args, kwargs = _replace(args, kwargs, ia, coded)
        out = func(*args, **kwargs)
        if self.sink is not None:
            self.sink(("binary", f"{base}.a", module, a, coded, b, out, self.path))
        return out

    def _attention(self, args: tuple, kwargs: dict) -> Any:
        """Scaled-dot-product attention: digital (its two products counted); under the "coded"
        rule the model must show its products (transformers: attn_implementation="eager")."""
        if self.net.coded_products in ("coded", "binary"):
            raise self.refusal("F.scaled_dot_product_attention", f"the {self.net.coded_products!r} products rule codes "
                               "the operands of attention's two products, which this fused function hides; load the "
                               "model with attn_implementation='eager' (transformers) or use products='digital'")
        out = ATTENTION(*args, **kwargs)
        if self.sink is not None:
            q, k = _get(args, kwargs, 0), _get(args, kwargs, 1)
            if isinstance(q, Tensor) and isinstance(k, Tensor):
                scores = q.shape[-2] * k.shape[-2]
                macs = 2 * scores * q.shape[-1] * (q.numel() // max(q.shape[-2] * q.shape[-1], 1))
                self.sink(("product", self.path, macs, _rows(out)))
        return out

    def refusal(self, what: str, why: str) -> UnsupportedLayerError:
        err = UnsupportedLayerError(what, self.path or "<model>", self.net.coding, why)
        if self.refused is None:
            self.refused = err
        return err


def binarize_per_head(x: Tensor, axis: int = -1) -> Tensor:
    """``sign(x) * mean|x|`` over ``axis`` (each head vector: one magnitude, one sign bit per entry;
    0 counts as positive), with the straight-through gradient (Otters' 1-bit K and V)."""
    scale = x.abs().mean(axis, keepdim=True)
    b = torch.where(x >= 0, scale, -scale)
    return x + (b - x).detach()


def feature_axis(x: Tensor) -> int:
    """The feature axis of a product's right operand: the innermost one in memory (-2 for a
    transposed view such as attention's ``key.transpose(-1, -2)``, whose head features run along
    the contracted axis; -1 otherwise, as for V)."""
    if x.dim() >= 2 and x.stride(-2) == 1 and x.stride(-1) != 1 and x.shape[-2] > 1:
        return -2
    return -1


def _channel_axis(geometry: tuple) -> int:
    """The axis of a site's activation whose entries reach different weights (its input channels):
    1 for a convolution, -2 for W @ x, -1 for x @ W and linear maps."""
    return 1 if geometry[0] == "conv" else -2 if geometry[0] == "left" else -1


def _geometry(kind: str, side: str, args: tuple, kwargs: dict) -> tuple:
    """How a weight operation connects its inputs, for counting its synaptic events:
    ("linear",) weight [out, in]; ("right",) x @ W, W [..., in, out]; ("left",) W @ x;
    ("conv", stride, padding, dilation, groups) as given to F.conv*d."""
    if kind == "linear":
        return ("linear",)
    if kind == "conv":
        names = ("stride", "padding", "dilation", "groups")
        values = [args[3 + i] if len(args) > 3 + i else kwargs.get(n, 0 if n == "padding" else 1)
                  for i, n in enumerate(names)]
        return ("conv", *values)
    return (side,)


def _get(args: tuple, kwargs: dict, index: int | str) -> Any:
    if isinstance(index, int):
        return args[index] if index < len(args) else kwargs.get(("input", "weight")[index] if index < 2 else "")
    return kwargs.get(index)


def _replace(args: tuple, kwargs: dict, index: int | str, value: Tensor) -> tuple[tuple, dict]:
    if isinstance(index, int) and index < len(args):
        return args[:index] + (value,) + args[index + 1:], kwargs
    key = ("input", "weight")[index] if isinstance(index, int) else index
    return args, {**kwargs, key: value}


def _rows(t: Tensor) -> int:
    return int(t.shape[0]) if t.dim() else 1


def _macs(a: Tensor, b: Tensor, out: Tensor) -> int:
    """Multiply-accumulates of a (batched) matrix product: each output element sums k products."""
    k = a.shape[-1] if a.dim() else 1
    return int(out.numel() * k)


# ------------------------------------------------------------------ module paths
def _enter(module: nn.Module, args: Any) -> None:
    cap = active_site_capture()
    if cap is not None:
        cap.paths.append(cap.net.path_of.get(id(module), type(module).__name__))


def _leave(module: nn.Module, args: Any, output: Any) -> None:
    cap = active_site_capture()
    if cap is not None and cap.paths:
        cap.paths.pop()


def module_path_hooks(model: nn.Module) -> dict[int, str]:
    """Hooks on every submodule of ``model`` that keep the capture's module stack (they do nothing
    outside a capture and hold no reference to ``model``: copies keep working). Submodules that
    already have them are skipped, so calling it again adopts modules placed since (a layer put on
    crossbars, a user's replacement) without doubling anyone's hooks. Returns each submodule's
    path by ``id`` (what the stack names it)."""
    paths: dict[int, str] = {}
    for name, m in model.named_modules():
        if not name:
            continue
        paths[id(m)] = name
        if _enter not in m._forward_pre_hooks.values():
            m.register_forward_pre_hook(_enter)
            m.register_forward_hook(_leave, always_call=True)
    return paths
