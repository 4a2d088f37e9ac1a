"""The dispatch mode that computes a forward's floating-point ATen operations with an arith.

Below autograd, every ATen operation the model's eager forward performs reaches
:meth:`GateCapture.__torch_dispatch__`: arithmetic goes to its handler (gate circuits or the
pinned float32 reference), data movement passes through, integer and boolean operations run as
they are, and any other operation on floats is refused with an
:class:`~isospike.errors.UnsupportedLayerError` naming the ATen operation and the module that
was running. Because the mode sits below autograd, gradients are the operations' own analytic
ones evaluated at the exact values (straight-through training for free).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from isospike.errors import UnsupportedLayerError
from isospike.exact.capture.handlers import IN_FORMAT, NATIVE, Refused, convert_dtype, handler_for, narrow
from isospike.exact.capture.passthrough import accumulates, passes_through
from isospike.exact.counting import ExactCounts, counting
from isospike.exact.primitives import Arith

aten = torch.ops.aten
_local = threading.local()


def active_capture() -> GateCapture | None:
    """The capture running on this thread, if any."""
    return getattr(_local, "capture", None)


def _touches_floats(args: tuple, kwargs: dict) -> bool:
    leaves, _ = tree_flatten((args, kwargs))
    return any(isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) for t in leaves)


_HALF = (torch.bfloat16, torch.float16)


def _has_half(args: tuple, kwargs: dict) -> bool:
    leaves, _ = tree_flatten((args, kwargs))
    return any(isinstance(t, torch.Tensor) and t.dtype in _HALF for t in leaves)


def _into(capture: GateCapture, out: Any, dst: torch.Tensor) -> Any:
    """An in-place operation's result in its destination's dtype (rounded by the conversion
    circuit when the out-of-place result is wider)."""
    if isinstance(out, torch.Tensor) and out.dtype != dst.dtype and out.is_floating_point():
        return convert_dtype(capture, out, dst.dtype)
    return out


def _meta(v: Any) -> Any:
    return v.to("meta") if isinstance(v, torch.Tensor) else v


def widened(handler: Any, func: Any, capture: GateCapture, *args: Any, **kwargs: Any) -> Any:
    """A handler on bfloat16/float16 operands, by torch's CPU rule for them: every bfloat16 /
    float16 operand is widened to float32 (exact, by the conversion circuit), the operation
    computes in float32 (its pinned algorithm, accumulations included) and each floating result
    is rounded once to the dtype torch gives it (found by running the operation on meta
    tensors), by the conversion circuit."""
    try:
        expected = tree_flatten(func(*tree_map(_meta, args), **tree_map(_meta, kwargs)))[0]
    except Exception:  # no meta kernel: the half dtype of the operands
        half = next(t.dtype for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor) and t.dtype in _HALF)
        expected = None

    def widen(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.dtype in _HALF:
            return v.to(torch.float32) if v.dim() == 0 else capture.A.to_float32(v)
        if isinstance(v, torch.dtype) and v in _HALF:  # dtype= arguments: the float32 computation
            return torch.float32
        return v

    out = handler(capture, *tree_map(widen, args), **tree_map(widen, kwargs))
    if out is NATIVE:
        return out
    leaves, spec = tree_flatten(out)
    dtypes = [getattr(e, "dtype", None) for e in expected] if expected is not None and len(expected) == len(leaves) \
        else [half if isinstance(v, torch.Tensor) and v.is_floating_point() else None for v in leaves]
    rounded = [narrow(capture, v, d) if isinstance(v, torch.Tensor) and d in _HALF else v for v, d in zip(leaves, dtypes)]
    return tree_unflatten(rounded, spec)


def _base_overload(func: Any) -> Any:
    """For an in-place overload (``add_.Tensor``) the out-of-place one (``add.Tensor``)."""
    name = func.overloadpacket.__name__
    if not name.endswith("_") or name.startswith("_"):
        return None
    packet = getattr(aten, name[:-1], None)
    return getattr(packet, func._overloadname, None) if packet is not None else None


class GateCapture(TorchDispatchMode):
    """Computes every floating-point ATen operation of the code run inside it with ``arith``
    (:class:`~isospike.exact.arith.GateArith` or :class:`~isospike.exact.arith.TorchArith`).

    ``path_of``: module id -> dotted path, for the module stack that names where each operation
    runs; ``counts``: when given, path -> :class:`ExactCounts` of the gates each module's
    operations evaluated. ``source``: the model's name, for errors. ``progress``: a
    :class:`~isospike.exact.progress.Progress` told the gate evaluations of each operation."""

    def __init__(self, arith: Arith, path_of: dict[int, str], counts: dict[str, ExactCounts] | None = None,
                 source: str = "model", progress: Any = None) -> None:
        super().__init__()
        self.A = arith
        self.progress = progress  # an isospike.exact.progress.Progress, or None
        self.path_of = path_of
        self.counts = counts
        self.source = source
        self.paths: list[str] = []
        self.func: Any = None
        # the first refusal raised: Tensor's Python operators turn a TypeError into NotImplemented
        # (and Python's own "unsupported operand" message), so the caller re-raises this one
        self.refused: UnsupportedLayerError | None = None

    # ------------------------------------------------------------------ mode stack
    def __enter__(self) -> GateCapture:
        self._outer = active_capture()
        _local.capture = self
        return super().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        _local.capture = self._outer
        return super().__exit__(*exc)

    @property
    def path(self) -> str:
        return self.paths[-1] if self.paths else ""

    # ------------------------------------------------------------------ dispatch
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        handler = handler_for(func)
        inplace = False
        if handler is None and (base := _base_overload(func)) is not None:
            handler, inplace = handler_for(base), True
        if handler is None:
            if passes_through(func) and not accumulates(func, args, kwargs):
                return func(*args, **kwargs)
            if not _touches_floats(args, kwargs):
                return func(*args, **kwargs)
            raise self.refusal(func, "it computes on floats and has no gate circuit")
        if "out" in kwargs:
            raise self.refusal(func, "its out= form is not captured; assign the result instead (y = f(x))")
        self.func = func
        if _has_half(args, kwargs) and handler not in IN_FORMAT:
            handler = functools.partial(widened, handler, func)
        try:
            if self.counts is not None or self.progress is not None:
                with counting() as c:
                    out = handler(self, *args, **kwargs)
                    if inplace and out is not NATIVE:
                        out = _into(self, out, args[0])
                if self.counts is not None:
                    target = self.counts.setdefault(self.path, ExactCounts())
                    for op, oc in c.by_op.items():
                        target.record(op, oc)
                if self.progress is not None:
                    self.progress.gates(c.gate_evaluations)
            else:
                out = handler(self, *args, **kwargs)
                if inplace and out is not NATIVE:
                    out = _into(self, out, args[0])
        except Refused as exc:
            raise self.refusal(func, str(exc)) from None
        if out is NATIVE:
            return func(*args, **kwargs)
        if inplace:
            return args[0].copy_(out)
        # one memory layout whatever the arith: the backward kernels then reduce in the same order
        # for the gate network and its reference (straight-through training step for step)
        return tree_map(lambda t: t.contiguous() if isinstance(t, torch.Tensor) else t, out)

    def refusal(self, func: Any, why: str) -> UnsupportedLayerError:
        name = f"aten.{func.overloadpacket.__name__}"
        where = self.path or f"<{self.source}>"
        err = UnsupportedLayerError(
            name, where, "exact",
            f"{why}. Compute it outside the converted model, or replace it by an operation with a circuit "
            "(docs/exact.md lists them)")
        if self.refused is None:
            self.refused = err
        return err


# ------------------------------------------------------------------ module paths
def _enter(module: nn.Module, args: Any) -> None:
    cap = active_capture()
    if cap is not None:
        cap.paths.append(cap.path_of.get(id(module), type(module).__name__))


def _leave(module: nn.Module, args: Any, output: Any) -> None:
    cap = active_capture()
    if cap is not None and cap.paths:
        cap.paths.pop()


def module_path_hooks(model: nn.Module) -> None:
    """Hooks on every submodule of ``model`` that keep the capture's module stack (they do
    nothing outside a capture, and hold no reference to ``model``: copies keep working)."""
    for name, m in model.named_modules():
        if name:
            m.register_forward_pre_hook(_enter)
            m.register_forward_hook(_leave, always_call=True)
