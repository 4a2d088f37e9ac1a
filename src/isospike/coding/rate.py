"""Rate coding: a value in [0, scale] is the fraction of the T steps in which a neuron spikes.

    spikes = encode(x, timesteps=8, scale=1.0)                 # [T, ...] float 0/1, deterministic
    spikes = encode(x, 8, method="poisson", generator=g)       # Bernoulli(x / scale) per step
    x_hat = decode(spikes, scale=1.0)                          # mean over time * scale

The deterministic encoder is an integrate-and-fire neuron with reset by subtraction, threshold
``scale`` and initial membrane ``scale / 2`` driven by x: it emits round(T x / scale) spikes
(clipped to 0..T), evenly spread, so |decode(encode(x)) - clip(x, 0, scale)| <= scale / (2 T).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def encode(x: Tensor, timesteps: int, scale: float = 1.0, method: Literal["deterministic", "poisson"] = "deterministic",
           generator: torch.Generator | None = None) -> Tensor:
    """Spike trains ``[T, *x.shape]`` (float32 0/1) for values ``x`` (any shape, floating point)."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    p = (x.detach().float() / scale).clamp(0, 1)
    if method == "poisson":
        draws = torch.rand((timesteps, *x.shape), generator=generator, device=generator.device if generator else x.device)
        return (draws.to(x.device) < p).to(torch.float32)
    if method != "deterministic":
        raise ValueError(f"method must be 'deterministic' or 'poisson', got {method!r}")
    v = torch.full_like(p, 0.5)
    out = torch.empty((timesteps, *x.shape), dtype=torch.float32, device=x.device)
    for t in range(timesteps):
        v = v + p
        s = v >= 1.0
        out[t] = s.to(torch.float32)
        v = v - s.to(v.dtype)
    return out


def decode(spikes: Tensor, scale: float = 1.0) -> Tensor:
    """Rates times ``scale``: the mean of ``spikes`` over the leading time dimension."""
    if spikes.dim() < 1 or spikes.shape[0] == 0:
        raise ValueError("spikes must have a non-empty leading time dimension [T, ...]")
    return spikes.float().mean(0) * scale
