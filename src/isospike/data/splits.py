"""Labelled tensor pairs and deterministic splits."""

from __future__ import annotations

from dataclasses import dataclass

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

    def subset(self, n: int, seed: int = 0) -> "LabelledData":
        """A random (seeded) subset of ``n`` samples (all of them if ``n >= len``)."""
        if n >= len(self):
            return self
        idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(self))[:n])
        return LabelledData(self.x[idx], self.y[idx])


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
