"""The forms input data takes at every entry that feeds a network (calibration, simulation,
training): a tensor, an ``(inputs, targets)`` pair, :class:`~isospike.data.LabelledData`, or an
iterable of batches such as a DataLoader -- yielded as input batches. A leaf: it imports nothing
from isospike."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

CalibrationData = Any  # Tensor | (x, y) pair | LabelledData | DataLoader | iterable of batches


def calibration_batches(calibration: CalibrationData, batch_size: int = 256) -> Iterator[Tensor]:
    """Yield input batches from ``calibration``: a tensor (split into ``batch_size`` chunks), an
    ``(inputs, targets)`` pair or :class:`~isospike.data.LabelledData` (inputs only), or an
    iterable of batches (tensors or tuples whose first element is the input). Batches holding
    NaN or inf are refused: thresholds measured on them would be meaningless."""
    for i, batch in enumerate(_raw_batches(calibration, batch_size)):
        if batch.is_floating_point() and not bool(torch.isfinite(batch).all()):
            raise ValueError(f"calibration batch {i} contains NaN or inf values; spikes carry finite values -- "
                             "drop or clean those samples (e.g. x[torch.isfinite(x).flatten(1).all(1)])")
        yield batch


def _is_target_pair(data: Any) -> bool:
    """An (inputs, targets) pair rather than two input batches: targets are labels [N], integers,
    or shaped unlike the inputs (one-hot [N, classes])."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(c, Tensor) for c in data)):
        return False
    x, y = data
    if x.dim() == 0 or y.dim() == 0 or len(x) != len(y):
        return False
    return y.dim() == 1 or not y.is_floating_point() or y.shape[1:] != x.shape[1:]


def _raw_batches(calibration: CalibrationData, batch_size: int) -> Iterator[Tensor]:
    if calibration is None:
        raise ValueError("calibration data is required here: pass calibration=<input tensor or batches>")
    if isinstance(calibration, Tensor):
        if calibration.dim() == 0 or len(calibration) == 0:
            raise ValueError("calibration tensor is empty: pass at least one input sample")
        yield from calibration.split(batch_size)
        return
    x = getattr(calibration, "x", None)
    if isinstance(x, Tensor):  # LabelledData
        yield from _raw_batches(x, batch_size)
        return
    if _is_target_pair(calibration):
        yield from _raw_batches(calibration[0], batch_size)
        return
    if not isinstance(calibration, Iterable):
        raise TypeError(
            f"calibration must be a tensor, an (inputs, targets) pair or an iterable of batches, "
            f"got {type(calibration).__name__}"
        )
    n = 0
    for batch in calibration:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if not isinstance(batch, Tensor):
            raise TypeError(f"calibration batches must be tensors or tuples whose first element is the input, got "
                            f"{type(batch).__name__}; for dict batches pass (b['<input key>'] for b in loader)")
        n += 1
        yield batch
    if n == 0:
        raise ValueError("calibration iterable yielded no batches")


def model_calls(data: Any, batch_size: int = 64) -> Iterator[tuple[tuple, dict]]:
    """The calls ``model(*args, **kwargs)`` that feed ``data`` to a model, as (args, kwargs):

    * a tensor: ``(chunk,)`` for each ``batch_size`` chunk of its first dimension;
    * a dict of keyword arguments (``{"input_ids": ids, "attention_mask": mask}``): one call
      per ``batch_size`` rows of every tensor in it that shares the first tensor's first dimension
      (other values passed as they are);
    * an ``(inputs, targets)`` pair or :class:`~isospike.data.LabelledData`: the inputs;
    * an iterable (a list, a DataLoader) of any of these: each as above (a tuple batch whose first
      element is the input, as DataLoaders of ``(x, y)`` give).

    Refuses an empty or unusable ``data`` with a message naming what was expected."""
    if data is None:
        raise ValueError("input data is required here: pass a tensor, a dict of keyword arguments, or an "
                         "iterable of them (a DataLoader)")
    if isinstance(data, Tensor):
        for chunk in _raw_batches(data, batch_size):
            yield (chunk,), {}
        return
    if isinstance(data, dict):
        yield from _dict_calls(data, batch_size)
        return
    x = getattr(data, "x", None)
    if isinstance(x, Tensor) or _is_target_pair(data):
        yield from model_calls(x if isinstance(x, Tensor) else data[0], batch_size)
        return
    if not isinstance(data, Iterable):
        raise TypeError(f"input data must be a tensor, a dict of keyword arguments or an iterable of them, got "
                        f"{type(data).__name__}")
    n = 0
    for item in data:
        if isinstance(item, (tuple, list)) and item and not isinstance(item[0], (tuple, list)):
            item = item[0]
        if not isinstance(item, (Tensor, dict)):
            raise TypeError(f"batches must be tensors, dicts of keyword arguments, or tuples whose first element is "
                            f"one of them, got {type(item).__name__}")
        n += 1
        yield from model_calls(item, batch_size)
    if n == 0:
        raise ValueError("the input iterable yielded no batches")


def several_batches(data: Any) -> bool:
    """Whether ``data`` holds several batches rather than one call's inputs: a list, a
    DataLoader, a generator, :class:`~isospike.data.LabelledData` or any other iterable -- not a
    tensor, a dict of keyword arguments, or a tuple (one call's positional arguments, where an API
    takes those). :func:`model_calls` reads it."""
    if isinstance(data, (Tensor, dict, tuple, str, bytes)):
        return False
    return isinstance(getattr(data, "x", None), Tensor) or isinstance(data, Iterable)


def _dict_calls(data: dict, batch_size: int) -> Iterator[tuple[tuple, dict]]:
    if not all(isinstance(k, str) for k in data):
        raise TypeError("a dict of inputs must map keyword names (strings) to values")
    first = next((v for v in data.values() if isinstance(v, Tensor) and v.dim()), None)
    if first is None:
        yield (), dict(data)
        return
    n = first.shape[0]
    if n == 0:
        raise ValueError("the input batch is empty: pass at least one sample")
    for i in range(0, n, batch_size):
        yield (), {k: v[i:i + batch_size] if isinstance(v, Tensor) and v.dim() and v.shape[0] == n else v
                   for k, v in data.items()}
