"""Labelled tensor pairs and deterministic splits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class LabelledData:
    """Inputs ``x`` (float32 ``[N, C, H, W]`` or ``[N, features]``) and labels ``y`` (int64 ``[N]``)."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def __iter__(self):
        # unpacking: x, y = data
        return iter((self.x, self.y))

    def subset(self, n: int, seed: int = 0) -> LabelledData:
        """A random (seeded) subset of ``n`` samples (all of them if ``n >= len``)."""
        if n >= len(self):
            return self
        idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(self))[:n])
        return LabelledData(self.x[idx], self.y[idx])


def as_labelled(data: Any, what: str = "data") -> LabelledData:
    """The (inputs, targets) of ``data`` as one LabelledData.

    ``data``: a LabelledData, an (inputs, targets) pair of tensors, or an iterable of (inputs,
    targets) batches such as a ``torch.utils.data.DataLoader`` or a ``TensorDataset`` (read once,
    concatenated in order). ``what`` names the argument in error messages."""
    if isinstance(data, LabelledData):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        return _checked(data[0], data[1], what)
    if isinstance(data, Tensor) or not (isinstance(data, Iterable) or hasattr(data, "__getitem__")):
        raise TypeError(f"{what} must be an (inputs, targets) pair of tensors, a LabelledData or a DataLoader of "
                        f"(inputs, targets) batches; got {type(data).__name__}")
    xs, ys = [], []
    for i, batch in enumerate(_batches_of(data)):
        if isinstance(batch, dict) or not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise TypeError(f"{what}: batch {i} is a {type(batch).__name__}; each batch must be an (inputs, targets) "
                            "pair (a DataLoader over a TensorDataset(x, y) gives those)")
        x, y = batch[0], batch[1]
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise TypeError(f"{what}: batch {i} holds {type(x).__name__} and {type(y).__name__}, not tensors")
        xs.append(x if x.dim() else x.reshape(1))
        ys.append(y if y.dim() else y.reshape(1))
    if not xs:
        raise ValueError(f"{what} is empty: it yielded no batches")
    if any(x.shape[1:] != xs[0].shape[1:] for x in xs):
        raise ValueError(f"{what}: the batches have different sample shapes "
                         f"({sorted({tuple(x.shape[1:]) for x in xs})}); give one shape per dataset")
    return _checked(torch.cat(xs), torch.cat(ys), what)


def _batches_of(data: Any) -> Iterable:
    """Batches of a DataLoader / iterable of batches, or of a map-style dataset of samples
    (``__getitem__`` + ``__len__``, e.g. a TensorDataset), collated as a DataLoader would."""
    if isinstance(data, Iterable):
        return data
    from torch.utils.data import DataLoader

    return DataLoader(data, batch_size=256)


def _checked(x: Tensor, y: Tensor, what: str) -> LabelledData:
    if len(x) != len(y):
        raise ValueError(f"{what}: inputs have {len(x)} samples but targets have {len(y)}")
    return LabelledData(x, y)


def class_targets(y: Tensor, what: str = "targets") -> Tensor:
    """Class indices (int64 ``[N]``) from integer labels of any integer dtype.

    One-hot or probability targets are refused with the fix rather than silently misread."""
    if y.is_floating_point() or y.dtype == torch.bool:
        shape = tuple(y.shape)
        hint = "; for one-hot targets pass y.argmax(1)" if y.dim() == 2 else ""
        raise TypeError(f"{what} must be integer class indices [N], got {y.dtype} of shape {shape}{hint}")
    if y.dim() != 1:
        raise ValueError(f"{what} must be class indices of shape [N], got shape {tuple(y.shape)}")
    return y.long()


@dataclass(frozen=True)
class DatasetSplits:
    """Train and test parts of a dataset, plus its name and class names."""

    name: str
    train: LabelledData
    test: LabelledData
    classes: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with the same class proportions in both, fixed by ``seed``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        n_test = int(round(len(members) * test_fraction))
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    train = np.concatenate(train_idx)
    test = np.concatenate(test_idx)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def train_validation_split(
    data: LabelledData, validation_fraction: float = 0.1, seed: int = 0
) -> tuple[LabelledData, LabelledData]:
    """Split a training set into (train, validation), stratified and fixed by ``seed``."""
    tr, va = stratified_split(data.y.numpy(), validation_fraction, seed)
    tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)
    return LabelledData(data.x[tr_t], data.y[tr_t]), LabelledData(data.x[va_t], data.y[va_t])
