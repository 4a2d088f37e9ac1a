"""Time-to-first-spike (TTFS) coding: each neuron fires at most once in a window of T steps.

A value quantized to level q in {0, ..., T} (step ``scale``) is sent as one spike at step
k = T - q (early = large); level 0 sends nothing. The receiver reads the spike's slot back as
a level; with a device (an optoelectronic synapse) it reads ``scale * T * O(t_k)`` instead,
O being the device's decay -- exactly ``scale * (T - k)`` for the nominal curve and its slot
times.

    spikes = encode(x, timesteps=15, scale=a)    # [T, ...] float 0/1, at most one 1 per neuron
    x_hat = decode(spikes, scale=a)               # levels * a, shaped like x
"""

from __future__ import annotations

import numbers
from typing import Literal

import torch
from torch import Tensor

Rounding = Literal["round", "floor"]


def levels(x: Tensor, timesteps: int, scale: float | Tensor, rounding: Rounding = "round") -> Tensor:
    """Integer level q = clip(round(x / scale), 0, T) (or floor), as int64."""
    if isinstance(timesteps, bool) or not isinstance(timesteps, numbers.Integral) or timesteps < 1:
        raise ValueError(f"timesteps must be an integer >= 1, got {timesteps!r}")
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}: pass torch.as_tensor(x)")
    s = torch.as_tensor(scale)
    if not bool(torch.all((s > 0) & torch.isfinite(s))):
        raise ValueError(f"scale (the value of one level) must be finite and > 0, got {scale}")
    if rounding not in ("round", "floor"):
        raise ValueError(f"rounding must be 'round' or 'floor', got {rounding!r}")
    if x.is_floating_point() and bool(torch.isnan(x).any()):
        raise ValueError("x holds NaN values, which have no spike time; clean it (e.g. torch.nan_to_num) first")
    u = x / scale
    q = torch.floor(u + 0.5) if rounding == "round" else torch.floor(u)
    return q.clamp(0, timesteps).to(torch.int64)


def level_table(scale: float | Tensor, slot_reads: Tensor) -> Tensor:
    """The value of each level, ``L_q = scale * T * O(t_{T - q})`` for q = 0..T (``slot_reads``:
    the synapse's read at each slot k = 0..T, slot T being silence, O = 0); ideal reads give
    ``L_q = q * scale``. The one level table of TTFS populations and their QNN activations."""
    T = slot_reads.shape[0] - 1
    table = scale * T * slot_reads.flip(0)
    return torch.cat([torch.zeros(1, dtype=table.dtype, device=table.device), table[1:]])


def level_of(magnitude: Tensor, table: Tensor, rounding: Rounding = "round") -> Tensor:
    """Integer level q (int64, 0..T) of each ``magnitude`` on a level table: the highest q whose
    threshold it reaches -- half-way up from the level below (``"round"``: the nearest level) or
    the level itself (``"floor"``). A neuron's membrane crossing its staircase threshold at step
    T - q is this rule run in time; NaN reaches no threshold (level 0, silence)."""
    thresholds = (table[1:] + table[:-1]) / 2 if rounding == "round" else table[1:]
    q = torch.searchsorted(thresholds.contiguous(), magnitude.contiguous(), right=True)  # in 0..T already
    return q.masked_fill_(torch.isnan(magnitude), 0) if magnitude.is_floating_point() else q


def encode(x: Tensor, timesteps: int = 15, scale: float | Tensor = 1.0, rounding: Rounding = "round") -> Tensor:
    """Spike trains ``[T, *x.shape]`` (dtype of x): one spike at step T - q for level q >= 1."""
    q = levels(x, timesteps, scale, rounding)
    steps = torch.arange(timesteps, device=x.device).reshape(-1, *([1] * x.dim()))
    return ((steps == timesteps - q) & (q > 0)).to(x.dtype if x.is_floating_point() else torch.float32)


def first_spike_slot(spikes: Tensor) -> Tensor:
    """Step index of each neuron's first spike, T where it stays silent (int64, shape [...])."""
    T = spikes.shape[0]
    fired = spikes != 0
    idx = torch.where(fired, torch.arange(T, device=spikes.device).reshape(-1, *([1] * (spikes.dim() - 1))),
                      torch.full_like(spikes, T, dtype=torch.int64))
    return idx.min(0).values


def decode(spikes: Tensor, scale: float | Tensor = 1.0, reads: Tensor | None = None) -> Tensor:
    """Values from spike trains ``[T, ...]``: ``scale * T * reads[k]`` for a first spike at step k
    (``reads`` defaults to the ideal (T - k) / T), 0 for silence."""
    T = spikes.shape[0]
    k = first_spike_slot(spikes)
    if reads is None:
        value = (T - k).to(torch.float32)
    else:
        table = torch.cat([reads.to(torch.float32)[:T], torch.zeros(1, device=reads.device)]).to(spikes.device)
        value = T * table[k]
    return value * scale
