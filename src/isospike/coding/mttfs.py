"""Masked time-to-first-spike coding (M-TTFS, Matterhorn): silence goes to the most frequent level.

Plain TTFS sends level q in {0..T} as one spike at step T - q and keeps silence (no spike, no
energy) for level 0. In a layer where most values sit on another level m (after a LayerNorm,
around a bias...), M-TTFS swaps the codes of m and 0: level m is sent as silence, level 0 as a
spike at step T - m, every other level as in TTFS. The map is a bijection, so decoding is exact:
the decoded values are those of plain TTFS. A dead zone k (lossy) also sends every level with
|q - m| <= k as silence, i.e. quantizes it to m.

Signed (two-channel) layers use signed levels -T..T; level 0 is then sent on the channel of m.

    m = most_frequent_level(levels(x_cal, T, a))        # per layer (or per channel with dim=...)
    spikes = encode(x, timesteps=T, scale=a, silent_level=m)     # [T, ...] 0/1
    x_hat = decode(spikes, scale=a, silent_level=m)              # == ttfs.decode(ttfs.encode(x))

Which level is silent (:data:`Silence`, the ``silence=`` option of the TTFS codings):

* ``"zero"``: isospike's signed TTFS -- sign-and-magnitude channels, level 0 silent;
* ``"lowest"``: the TTFS baseline of the Matterhorn paper -- levels offset to be unsigned
  (q + T on a signed layer), so the lowest level (:func:`lowest_level`: -T signed, 0 unsigned) is
  silent and 0 fires; on unsigned (ReLU) layers it is the same as ``"zero"``;
* ``"mode"``: M-TTFS -- each layer's most frequent level on calibration data is silent.

The spike format is the same for all three (one spike per non-silent neuron, on its sign's
channel at its level's slot, the codes of the silent level and 0 swapped): only which neurons
stay silent changes. The seed's one-channel offset code would need a window of 2T slots for the
2T + 1 levels of a signed layer; neuron updates are counted for T slots here, as for signed TTFS.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import Tensor

from isospike.coding.ttfs import Rounding, first_spike_slot
from isospike.coding.ttfs import levels as ttfs_levels

Silence = Literal["zero", "lowest", "mode"]
SILENCES: tuple[Silence, ...] = ("zero", "lowest", "mode")


def check_silence(silence: object, accepted: tuple[Silence, ...] = SILENCES, hint: str = "") -> Silence:
    """``silence`` if it is one of ``accepted``, else a ValueError naming the accepted values."""
    if not isinstance(silence, str) or silence not in accepted:
        names = ", ".join(repr(a) for a in accepted)
        raise ValueError(f"silence must be one of {names} (which level is sent as silence), got {silence!r}{hint}")
    return cast(Silence, silence)


def lowest_level(timesteps: int, signed: bool) -> int:
    """The lowest level of a TTFS layer: -T on a signed (two-channel) layer, 0 on an unsigned one.
    Matterhorn's TTFS baseline (``silence="lowest"``) sends it as silence."""
    return -int(timesteps) if signed else 0


def most_frequent_level(q: Tensor, channel_dim: int | None = None) -> Tensor:
    """The most frequent integer level of ``q`` (int64 scalar), or one per channel along
    ``channel_dim`` (shape ``[C]``). Ties go to the level closest to 0, then the positive one."""
    if q.is_floating_point():
        raise TypeError("most_frequent_level expects integer levels (see isospike.coding.ttfs.levels)")
    if q.numel() == 0:
        raise ValueError("cannot measure the most frequent level of an empty tensor")
    if channel_dim is None:
        return _mode(q.flatten())
    flat = q.movedim(channel_dim, 0).reshape(q.shape[channel_dim], -1)
    return torch.stack([_mode(row) for row in flat])


def most_frequent_counted_level(counts: Tensor, timesteps: int) -> Tensor:
    """The most frequent level from ``counts`` of the signed levels q = -T..T (index q + T on the
    last axis, 2T + 1 long; one level per row of any leading axes). Ties as
    :func:`most_frequent_level`."""
    return _most_frequent(counts, torch.arange(-timesteps, timesteps + 1, device=counts.device))


def _mode(v: Tensor) -> Tensor:
    lo = int(v.min())
    counts = torch.bincount(v - lo)
    return _most_frequent(counts, torch.arange(len(counts), dtype=torch.int64, device=v.device) + lo)


def _most_frequent(counts: Tensor, values: Tensor) -> Tensor:
    """The value of the largest count along the last axis; ties go to the value nearest 0, then
    the positive one."""
    best = counts == counts.max(-1, keepdim=True).values
    key = torch.where(best, values.abs() * 2 + (values < 0).to(torch.int64), torch.iinfo(torch.int64).max)
    return values[key.argmin(-1)]


def apply_dead_zone(q: Tensor, silent_level: Tensor | int, dead_zone: int) -> Tensor:
    """Levels with |q - m| <= dead_zone become m (dead_zone = 0: unchanged)."""
    if dead_zone < 0:
        raise ValueError(f"dead_zone must be >= 0, got {dead_zone}")
    if dead_zone == 0:
        return q
    m = torch.as_tensor(silent_level, dtype=q.dtype)
    return torch.where((q - m).abs() <= dead_zone, m.expand_as(q) if m.dim() else m, q)


def spike_code(q: Tensor, silent_level: Tensor | int) -> Tensor:
    """The (signed) TTFS code sending level q: the codes of m and 0 swapped (0 = silence)."""
    m = torch.as_tensor(silent_level, dtype=torch.int64)
    q = q.to(torch.int64)
    return torch.where(q == m, torch.zeros_like(q), torch.where(q == 0, m.expand_as(q), q))


def level_of_code(code: Tensor, silent_level: Tensor | int) -> Tensor:
    """Inverse of :func:`spike_code`."""
    m = torch.as_tensor(silent_level, dtype=torch.int64)
    return torch.where(code == 0, m.expand_as(code), torch.where(code == m, torch.zeros_like(code), code))


def spike_slot(q: Tensor, silent_level: Tensor | int, timesteps: int) -> Tensor:
    """Step of the spike sending level q (T = silent)."""
    return timesteps - spike_code(q, silent_level).abs()


def encode(x: Tensor, timesteps: int = 15, scale: float | Tensor = 1.0, silent_level: Tensor | int = 0,
           dead_zone: int = 0, rounding: Rounding = "round", signed: bool = False) -> Tensor:
    """Spike trains ``[T, *x.shape]`` (float 0/1, at most one spike per neuron): the TTFS level of
    x (signed: of |x| with x's sign), dead zone applied, sent with silence for ``silent_level``.
    Signed layers return the two channels stacked: ``[2, T, *x.shape]`` (positive, negative)."""
    mag = ttfs_levels(x.abs() if signed else x, timesteps, scale, rounding)
    q = torch.where(x < 0, -mag, mag) if signed else mag
    code = spike_code(apply_dead_zone(q, silent_level, dead_zone), silent_level)
    steps = torch.arange(timesteps, device=x.device).reshape(-1, *([1] * x.dim()))
    fired = (steps == timesteps - code.abs()) & (code != 0)
    if not signed:
        return fired.to(torch.float32)
    return torch.stack([fired & (code > 0), fired & (code < 0)]).to(torch.float32)


def decode(spikes: Tensor, scale: float | Tensor = 1.0, silent_level: Tensor | int = 0, signed: bool = False) -> Tensor:
    """Values from M-TTFS spike trains (inverse of :func:`encode` with the same silent level):
    level * scale, silence decoded as the silent level. Signed: ``spikes`` is ``[2, T, ...]``."""
    if signed:
        T = spikes.shape[1]
        sp, sn = first_spike_slot(spikes[0]), first_spike_slot(spikes[1])
        code = torch.where(sp < T, T - sp, torch.where(sn < T, sn - T, torch.zeros_like(sp)))
    else:
        T = spikes.shape[0]
        code = T - first_spike_slot(spikes)
    return level_of_code(code, silent_level).to(torch.float32) * scale
