"""Batch data augmentation for the ``augment=`` hook of :func:`~isospike.train.fit_classifier`
and :func:`~isospike.train.noise_aware`: ``augment(x, generator) -> x`` on a whole batch,
deterministic for a given generator state."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def crop_flip(padding: int = 4, flip: bool = True, fill: float = 0.0) -> Callable[[Tensor, torch.Generator], Tensor]:
    """The standard CIFAR augmentation: pad every side by ``padding`` pixels with ``fill``, take
    a random crop of the original size, and (with ``flip``) mirror left-right with probability
    1/2. Each image draws its own offsets and flip. Input and output ``[N, C, H, W]``."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")

    def augment(x: Tensor, generator: torch.Generator) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"crop_flip expects images [N, C, H, W], got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        if padding > 0:
            padded = F.pad(x, (padding, padding, padding, padding), value=fill)
            dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
            dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
            rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # [N, 1, H, 1]
            cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # [N, 1, 1, W]
            batch = torch.arange(n)[:, None, None, None]
            chan = torch.arange(x.shape[1])[None, :, None, None]
            x = padded[batch, chan, rows, cols]
        if flip:
            mirror = torch.rand(n, generator=generator) < 0.5
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        return x

    return augment
