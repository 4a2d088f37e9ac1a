"""What loading a file may cost, decided before anything is allocated.

A file (a saved network, a NIR graph, a Hugging Face folder) may come from someone you do not
trust, so every load is bounded by the size of what it reads:

- **Memory.** Tensors are read only after their declared sizes were summed and compared with the
  file (safetensors headers, HDF5 dataset shapes); a load may then hold its stored tensors plus
  at most :func:`memory_cap` bytes for the work it does on them: ``BASE_BYTES`` (256 MiB) plus
  ``BYTES_PER_FILE_BYTE`` (16) bytes per byte of the file. NIR arrays may declare at most that
  many bytes in all (compressed arrays inflate: a 24 KB file used to be allowed 2 GiB).
- **The test run.** Loading a spiking network runs one sample of its recorded input shape, one
  step, so that a graph that cannot run is refused at load; NIR loading propagates one sample's
  shapes. That run happens under :func:`bounded`: before each torch operation runs, its outputs
  are computed on the ``meta`` device (shapes only), and the run is refused, naming the file and
  the cap, as soon as the bytes its operations allocate (counted without subtracting what is
  freed: an over-estimate), their arithmetic (multiply-adds of matrix products and convolutions,
  one per element for the rest) or the time spent would pass :func:`memory_cap`,
  :func:`work_cap` or ``MAX_SECONDS`` (60 s). Nothing over the cap is ever allocated. The run's
  errors are reported in one line (fx's own traceback print is kept off stderr).

The constants are module attributes so a deployment (or a test) can tighten them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from isospike.errors import FileFormatError

__all__ = ["BASE_BYTES", "BYTES_PER_FILE_BYTE", "BASE_WORK", "WORK_PER_FILE_BYTE", "MAX_SECONDS", "LoadBoundError",
           "bounded", "memory_cap", "work_cap"]

BASE_BYTES = 256 * 2**20
BYTES_PER_FILE_BYTE = 16
BASE_WORK = 10**10  # multiply-adds (or elements) a load's test run may compute, plus ...
WORK_PER_FILE_BYTE = 10**4  # ... this many per byte of the file (a CNN on 224x224 images needs about 6,000)
MAX_SECONDS = 60.0


def memory_cap(file_bytes: int) -> int:
    """Bytes a load may allocate beyond the tensors it stores, for a file of ``file_bytes``."""
    return BASE_BYTES + BYTES_PER_FILE_BYTE * max(int(file_bytes), 0)


def work_cap(file_bytes: int) -> int:
    """Operations a load's test run may compute, for a file of ``file_bytes``."""
    return BASE_WORK + WORK_PER_FILE_BYTE * max(int(file_bytes), 0)


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


class LoadBoundError(FileFormatError):
    """A load would pass its memory, work or time bound (:mod:`isospike.serialize.bounds`)."""


def _outputs(value: Any) -> list[Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, Tensor)]


def _to_meta(value: Any) -> Any:
    return value.to("meta") if isinstance(value, Tensor) and not value.is_meta else value


def _aliases(func: Any) -> bool:
    """Whether an operation returns (a view of) one of its inputs: views and in-place updates
    allocate nothing new."""
    schema = getattr(func, "_schema", None)
    return schema is not None and any(r.alias_info is not None for r in schema.returns)


_CPU_ATTENTION = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


class _Meter(TorchDispatchMode):
    """Counts, before each torch operation runs, what it would allocate and compute (from its
    output shapes on the meta device), and refuses the operation that would pass a bound."""

    def __init__(self, source: str, what: str, max_bytes: int, max_work: int, seconds: float) -> None:
        super().__init__()
        self.source, self.what = source, what
        self.max_bytes, self.max_work, self.seconds = max_bytes, max_work, seconds
        self.bytes = 0
        self.work = 0
        self.start = time.monotonic()
        self.refusal: str | None = None

    def charge(self, nbytes: int, why: str = "") -> None:
        """Count ``nbytes`` allocated outside torch operations (the test input itself)."""
        self.bytes += nbytes
        if self.bytes > self.max_bytes:
            self._refuse(f"{self.what} would allocate more than {_size(self.max_bytes)}{why}")

    def _refuse(self, reason: str) -> None:
        if self.refusal is None:
            self.refusal = reason
        raise LoadBoundError(self.message())

    def message(self) -> str:
        return (f"{self.source}: {self.refusal}, the bound for a file of this size (isospike.serialize.bounds); "
                "the file is crafted or damaged, or a network too large to check at load")

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self.refusal is not None:  # sticky: code that swallows the first refusal meets it again
            raise LoadBoundError(self.message())
        if time.monotonic() - self.start > self.seconds:
            self._refuse(f"{self.what} took more than {self.seconds:g} s")
        if not _aliases(func):
            nbytes, work = self._estimate(func, args, kwargs)
            self.bytes += nbytes
            self.work += work
            if self.bytes > self.max_bytes:
                self._refuse(f"{self.what} would allocate more than {_size(self.max_bytes)} "
                             f"({func.overloadpacket.__name__} asks for {_size(nbytes)})")
            if self.work > self.max_work:
                self._refuse(f"{self.what} would compute more than {self.max_work:.2g} operations "
                             f"({func.overloadpacket.__name__} asks for {work:.2g})")
        return func(*args, **kwargs)

    def _estimate(self, func: Any, args: tuple, kwargs: dict) -> tuple[int, int]:
        """(bytes, operations) of ``func`` on these arguments, from a run on the meta device; an
        operation without a meta kernel (data-dependent sizes) is counted by its inputs."""
        meta_args = tree_map(_to_meta, args)
        meta_kwargs = tree_map(_to_meta, kwargs)
        if "device" in meta_kwargs:
            meta_kwargs["device"] = torch.device("meta")
        try:
            out = func(*meta_args, **meta_kwargs)
        except Exception:  # noqa: BLE001 - no meta kernel, or the real call fails the same way
            inputs = _outputs((args, kwargs))
            return sum(t.numel() * t.element_size() for t in inputs), sum(t.numel() for t in inputs)
        outs = _outputs(out)
        nbytes = sum(t.numel() * t.element_size() for t in outs)
        work = sum(t.numel() for t in outs) + sum(t.numel() for t in _outputs((args, kwargs)))
        packet = func.overloadpacket
        try:
            from torch.utils.flop_counter import flop_registry

            if packet in flop_registry:
                work = max(work, int(flop_registry[packet](*meta_args, **meta_kwargs, out_val=out)) // 2)
        except Exception:  # noqa: BLE001 - a formula that does not take these arguments: keep the estimate
            pass
        if packet is torch.ops.aten.convolution and len(meta_args) > 1 and outs and outs[0].dim() > 1:
            weight = meta_args[1]  # [out, in / groups, *kernel]; the im2col workspace holds in x kernel per position
            groups = int(meta_args[8]) if len(meta_args) > 8 else int(meta_kwargs.get("groups", 1))
            positions = outs[0].numel() // max(int(outs[0].shape[1]), 1)
            per_position = weight.numel() // max(int(weight.shape[0]), 1) * groups
            nbytes += positions * per_position * outs[0].element_size()
            work = max(work, positions * weight.numel())
        if packet is _CPU_ATTENTION and len(meta_args) > 2:
            q, k, v = meta_args[:3]  # [..., L, E], [..., S, E], [..., S, Ev]: L x S x (E + Ev) per head
            work = max(work, q.numel() // max(int(q.shape[-1]), 1) * int(k.shape[-2]) * (int(q.shape[-1]) + int(v.shape[-1])))
        return nbytes, work


@contextlib.contextmanager
def bounded(source: str, file_bytes: int, what: str) -> Iterator[_Meter]:
    """Run the block (a load's test run) under the memory, work and time bounds of a file of
    ``file_bytes``; :class:`LoadBoundError` naming ``source`` when it would pass one. Torch
    operations are refused before they allocate; code inside that catches the refusal meets it
    again at its next operation, and the block's end raises it in any case."""
    meter = _Meter(source, what, memory_cap(file_bytes), work_cap(file_bytes), MAX_SECONDS)
    with quiet_fx(), meter:
        yield meter
    if meter.refusal is not None:
        raise LoadBoundError(meter.message())


_QUIET_LOCK = threading.Lock()
_quiet_depth = 0
_loud_call: Any = None


@contextlib.contextmanager
def quiet_fx() -> Iterator[None]:
    """Inside the block, an error raised by an fx graph's generated code is raised without fx
    first printing its 25-line source excerpt to stderr: a load reports a crafted graph in one
    clean line. (fx's ``_WrappedCall`` prints it; the block runs the same call without the print,
    and everything is as before after it. Nested and concurrent blocks share one patch, removed
    when the last one ends.)"""
    global _quiet_depth, _loud_call
    from torch.fx import graph_module

    wrapped = getattr(graph_module, "_WrappedCall", None)
    if wrapped is None or "__call__" not in vars(wrapped):  # another torch: nothing to quiet
        yield
        return

    def call(self: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "cls_call", None) is not None:
            return self.cls_call(obj, *args, **kwargs)
        return super(self.cls, obj).__call__(*args, **kwargs)

    with _QUIET_LOCK:
        if _quiet_depth == 0:
            _loud_call = vars(wrapped)["__call__"]
            setattr(wrapped, "__call__", call)  # noqa: B010 - the class attribute, for the block only
        _quiet_depth += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                setattr(wrapped, "__call__", _loud_call)  # noqa: B010
