"""The arrays of a NIR graph, read as data.

A NIR file is HDF5: its arrays may hold complex numbers, strings, objects, NaN or infinities, and
numpy would quietly turn ``1+5j`` into ``1.0``. Every array a node gives isospike goes through
:func:`numbers` (real numbers only, finite, whole where a size is meant) and every layer is built
by :func:`linear` / :func:`conv`: on the ``meta`` device first (no storage, no random
initialization, so the global torch RNG is never touched), then given the file's tensors. Each
refusal is one :class:`~isospike.errors.FileFormatError` naming the file, the node and the field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from isospike.errors import FileFormatError, one_line

MAX_SIZE = 2**16  # a kernel size, stride, padding or dilation


def numbers(value: Any, source: str, key: str, field: str, *, whole: bool = False) -> np.ndarray:
    """``value`` (a node's field) as a numpy array of real, finite numbers (``whole``: integers)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested sequences
        raise FileFormatError(f"{source}: the {field} of NIR node {key!r} is not an array of numbers "
                              f"({one_line(exc, 120)})") from None
    kind = arr.dtype.kind
    example = arr.ravel()[:3].tolist() if arr.size else []
    if kind == "c":
        raise FileFormatError(f"{source}: the {field} of NIR node {key!r} holds complex numbers ({example}); NIR "
                              "parameters are real numbers (isospike never drops an imaginary part): the file is "
                              "damaged or was written from complex data")
    if kind not in "biuf":
        raise FileFormatError(f"{source}: the {field} of NIR node {key!r} holds {arr.dtype} values, not numbers; the "
                              "file is damaged or crafted")
    if kind == "f" and not np.isfinite(arr).all():
        raise FileFormatError(f"{source}: the {field} of NIR node {key!r} holds NaN or infinite values; the file is "
                              "damaged")
    if whole and kind == "f" and not (arr == np.round(arr)).all():
        raise FileFormatError(f"{source}: the {field} of NIR node {key!r} must hold whole numbers, got {example}")
    return arr


def tensor(value: Any, source: str, key: str, field: str, ndim: int | None = None) -> Tensor:
    """A node's field as a float32 tensor (finite after the cast: 1e300 is refused, not inf)."""
    arr = numbers(value, source, key, field)
    if ndim is not None and arr.ndim != ndim:
        raise FileFormatError(f"{source}: the {field} of NIR node {key!r} has shape {list(arr.shape)[:8]}, not "
                              f"{ndim} dimensions")
    t = torch.as_tensor(arr.astype(np.float32, copy=False) if arr.dtype.kind == "f" else arr, dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise FileFormatError(f"{source}: the {field} of NIR node {key!r} holds values beyond float32's range")
    return t


def sizes(value: Any, source: str, key: str, field: str, lo: int, length: int | None = None) -> tuple[int, ...]:
    """A node's field as whole numbers in [lo, MAX_SIZE] (a kernel size, stride, padding...)."""
    arr = numbers(value, source, key, field, whole=True).reshape(-1)
    if not arr.size or (length is not None and arr.size not in (1, length)) or arr.size > 8 \
            or (arr < lo).any() or (arr > MAX_SIZE).any():
        raise FileFormatError(f"{source}: the {field} of NIR node {key!r} must be {length or 'at most 8'} whole "
                              f"number(s) in [{lo}, {MAX_SIZE}], got {arr.tolist()[:8]}")
    values = tuple(int(v) for v in arr)
    return values * length if length is not None and len(values) == 1 else values


def pair(value: Any, source: str, key: str, field: str, lo: int) -> tuple[int, int]:
    """:func:`sizes` of a 2-d layer (one value is used for both dimensions)."""
    a, b = sizes(value, source, key, field, lo, 2)
    return a, b


def _filled(module: nn.Module, state: dict[str, Tensor], source: str, key: str) -> nn.Module:
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise FileFormatError(f"{source}: the arrays of NIR node {key!r} do not fit its layer "
                              f"({one_line(exc, 200)})") from None
    return module


def linear(weight: Tensor, bias: Tensor | None, source: str, key: str) -> nn.Linear:
    """``nn.Linear`` holding ``weight`` [out, in] (and ``bias`` [out]), built without initialization."""
    with torch.device("meta"):
        m = nn.Linear(int(weight.shape[1]), int(weight.shape[0]), bias=bias is not None)
    state = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    filled = _filled(m, state, source, key)
    assert isinstance(filled, nn.Linear)  # _filled returns the module it was given
    return filled


def conv(cls: type[nn.Conv1d] | type[nn.Conv2d], weight: Tensor, bias: Tensor, source: str, key: str,
         **kwargs: Any) -> nn.Module:
    """A convolution holding ``weight`` [out, in / groups, *kernel] and ``bias``, built without
    initialization; its own refusals (groups that do not divide) name the node."""
    groups = int(kwargs.get("groups", 1))
    kernel = tuple(int(k) for k in weight.shape[2:])
    try:
        with torch.device("meta"):
            m = cls(int(weight.shape[1]) * groups, int(weight.shape[0]), kernel if cls is nn.Conv2d else kernel[0],  # type: ignore[arg-type]  # one size per spatial dimension, as the weight has
                    **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise FileFormatError(f"{source}: NIR node {key!r} does not describe a convolution ({one_line(exc, 200)})") \
            from None
    return _filled(m, {"weight": weight, "bias": bias}, source, key)
