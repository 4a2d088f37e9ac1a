"""Sigma-delta spike coding: a neuron sends a signed spike of size ``threshold`` whenever the
signal has moved by one threshold from what the receiver has reconstructed; the receiver
integrates the spikes (optionally with a leak). The reconstruction stays within ``threshold`` of
the signal at every step (within threshold / 2 with ``quantizer="round"``, which fires at half
a threshold); several spikes per step are allowed when the signal jumps.

    spikes = encode(x_seq, threshold=0.1)            # int32 [T, ...]: signed spike counts
    x_hat = decode(spikes, threshold=0.1)            # [T, ...], |x_hat - x_seq| < 0.1
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from isospike.errors import check_count


def _check(threshold: float, leak: float) -> None:
    if not 0 < threshold < math.inf:
        raise ValueError(f"threshold must be a finite number > 0 (the value of one spike), got {threshold}")
    if not 0 < leak <= 1:
        raise ValueError(f"leak must be in (0, 1], got {leak}")


def settled_level(y: Tensor, threshold: float) -> Tensor:
    """round(ReLU(y) / threshold): the spike count a sigma-delta ReLU neuron holds once it has
    settled on the input y (its receivers then hold threshold times it). The one rule of the
    converted sigma-delta populations and of their equivalent quantizer."""
    return torch.round(torch.relu(y) / threshold)


def signed_level(y: Tensor, threshold: float) -> Tensor:
    """round(y / threshold): the spike count a signed sigma-delta neuron holds once it has settled
    on y (sites of the general front end, whose activations may be negative)."""
    return torch.round(y / threshold)


def encode(x_seq: Tensor, threshold: float, leak: float = 1.0, signed: bool = True,
           max_spikes: int | None = None, quantizer: str = "threshold") -> Tensor:
    """Signed spike counts ``[T, ...]`` (int32) for the signal ``x_seq [T, ...]``.

    At each step the receiver's reconstruction decays by ``leak`` (1: a pure integrator); the
    sender emits n = trunc(e / threshold) spikes for the error e = x_t - leak * x_hat_{t-1}
    (``quantizer="round"``: round(e / threshold)), clipped to ``max_spikes`` in magnitude, only
    positive ones when ``signed=False`` (the bounds then hold only while the signal allows)."""
    _check(threshold, leak)
    if max_spikes is not None:  # None: no limit
        max_spikes = check_count(max_spikes, "max_spikes (spikes per step)")
    if quantizer not in ("threshold", "round"):
        raise ValueError(f"quantizer must be 'threshold' or 'round', got {quantizer!r}")
    if not x_seq.is_floating_point():
        raise TypeError(f"x_seq must be a floating-point tensor, got {x_seq.dtype}")
    if x_seq.dim() < 1:
        raise ValueError("x_seq must have a leading time dimension [T, ...]")
    if not bool(torch.isfinite(x_seq).all()):
        raise ValueError("x_seq holds NaN or inf values: a spike count cannot carry them; clean the signal "
                         "(e.g. torch.nan_to_num) first")
    limit = torch.iinfo(torch.int32).max
    x_hat = torch.zeros(x_seq.shape[1:], dtype=torch.float64, device=x_seq.device)
    out = torch.empty(x_seq.shape, dtype=torch.int32, device=x_seq.device)
    for t in range(x_seq.shape[0]):
        e = x_seq[t].double() - leak * x_hat
        n = torch.round(e / threshold) if quantizer == "round" else torch.trunc(e / threshold)
        if not signed:
            n = n.clamp_min(0)
        if max_spikes is not None:
            n = n.clamp(-max_spikes, max_spikes)
        if bool((n.abs() > limit).any()):
            raise ValueError(f"the signal moves by more than {limit} thresholds in one step (step {t}); use a larger "
                             "threshold or cap the spikes per step with max_spikes")
        x_hat = leak * x_hat + threshold * n
        out[t] = n.to(torch.int32)
    return out


def decode(spikes: Tensor, threshold: float, leak: float = 1.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """Reconstruction ``[T, ...]`` of signed spike counts: x_hat_t = leak * x_hat_{t-1}
    + threshold * n_t, accumulated in float64 and returned as ``dtype``.

    The bound ``|x_hat - x| <= threshold`` holds in float64; returning float32 adds the rounding
    of the result (half a float32 ULP of x: pass ``dtype=torch.float64`` for thresholds below
    about 1e-7 |x|)."""
    _check(threshold, leak)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    if spikes.dim() < 1:
        raise ValueError("spikes must have a leading time dimension [T, ...]")
    x_hat = torch.zeros(spikes.shape[1:], dtype=torch.float64, device=spikes.device)
    out = torch.empty(spikes.shape, dtype=dtype, device=spikes.device)
    for t in range(spikes.shape[0]):
        x_hat = leak * x_hat + threshold * spikes[t].double()
        out[t] = x_hat.to(dtype)
    return out
