"""Training sequence models defined in physical time (SpikingGamma and its LIF baseline).

Classification of frame sequences (``[N, L, F]`` frames, each held for ``frame_ms``): the loss is
the cross-entropy of the read-out at each step of the last ``readout_ms`` of the sequence,
averaged over those steps; the prediction is the arg-max of the read-out averaged over them.

Modes:
- ``"offline"``: backpropagation through time over the whole sequence (the reference).
- ``"online"``: SpikingGamma only. The state is detached after every step, so memory does not
  grow with the sequence; each read-out step's loss is backpropagated at once through that step
  (eligibility traces in the gamma memory carry the time-constant gradients forward) and the
  gradients are accumulated over the sequence. :func:`gradient_alignment` measures how close
  this comes to BPTT.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from isospike.data.sequences import frames_to_steps, steps_per_frame
from isospike.data.splits import as_labelled
from isospike.models.spiking_gamma import GammaRun, SpikingGammaNet


@dataclass
class SequenceTiming:
    """How frames map to time: ``frame_ms`` per frame, step ``dt_ms``, read-out window ``readout_ms``
    at the end of the sequence (None: the last quarter of it)."""

    frame_ms: float = 4.0
    dt_ms: float = 1.0
    readout_ms: float | None = None

    def readout_steps(self, frames: int) -> int:
        k = steps_per_frame(self.frame_ms, self.dt_ms)
        total = frames * k
        ms = self.readout_ms if self.readout_ms is not None else frames * self.frame_ms / 4
        return max(1, min(total, int(round(ms / self.dt_ms))))

    def at(self, dt_ms: float) -> SequenceTiming:
        return SequenceTiming(self.frame_ms, dt_ms, self.readout_ms)


@dataclass
class SequenceEpoch:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None = None


@dataclass
class SequenceHistory:
    mode: str
    epochs: list[SequenceEpoch] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"mode": self.mode, "epochs": [asdict(e) for e in self.epochs]}


def _pair(data: Any) -> tuple[Tensor, Tensor]:
    """Frames [N, L, F] and class labels [N] (or target frames [N, L, n_out]) from a pair,
    LabelledData or DataLoader."""
    x, y = as_labelled(data, "data (frames [N, L, F] and labels [N] or target frames [N, L, n_out])")
    if x.dim() != 3:
        raise ValueError(f"inputs must be frames [N, L, F] (see isospike.data.sequences.rows_as_frames), got {tuple(x.shape)}")
    if len(x) != len(y):
        raise ValueError(f"inputs have {len(x)} samples but targets have {len(y)}")
    if y.is_floating_point():
        if y.dim() != 3 or y.shape[1] != x.shape[1]:
            raise ValueError(f"waveform targets must be frames [N, L, n_out] with L = {x.shape[1]}, got {tuple(y.shape)}")
        return x.float(), y.float()
    if y.dim() != 1:
        raise ValueError(f"class labels must be [N] integers, got {tuple(y.shape)}")
    return x.float(), y.long()


def readout(model: nn.Module, frames: Tensor, timing: SequenceTiming) -> Tensor:
    """Read-out during the read-out window: ``[R, N, n_out]``."""
    out = model(frames_to_steps(frames, timing.frame_ms, timing.dt_ms), timing.dt_ms)
    return out[-timing.readout_steps(frames.shape[1]):]


def window_loss(out: Tensor, y: Tensor) -> Tensor:
    """Mean over the window ``[R, N, C]`` of each step's cross-entropy."""
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.repeat(out.shape[0]))


def _offline_batch(model: nn.Module, frames: Tensor, y: Tensor, timing: SequenceTiming) -> tuple[float, Tensor]:
    """BPTT gradients for one batch; returns (loss, logits [B, C] or outputs [T, B, n_out])."""
    if y.is_floating_point():
        out = model(frames_to_steps(frames, timing.frame_ms, timing.dt_ms), timing.dt_ms)
        loss = F.mse_loss(out, frames_to_steps(y, timing.frame_ms, timing.dt_ms))
        loss.backward()
        return float(loss.detach()), out.detach()
    out = readout(model, frames, timing)
    loss = window_loss(out, y)
    loss.backward()
    return float(loss.detach()), out.detach().mean(0)


def _online_batch(model: SpikingGammaNet, frames: Tensor, y: Tensor, timing: SequenceTiming) -> tuple[float, Tensor]:
    """Accumulate online gradients for one batch, one step at a time with the state detached;
    returns what :func:`_offline_batch` returns."""
    x = frames_to_steps(frames, timing.frame_ms, timing.dt_ms)
    T, B = x.shape[:2]
    waveform = y.is_floating_point()
    target = frames_to_steps(y, timing.frame_ms, timing.dt_ms) if waveform else None
    R = T if waveform else timing.readout_steps(frames.shape[1])
    states = model.initial_state(B, online=True)
    total, outs = 0.0, []
    for t in range(T):
        if t < T - R:
            with torch.no_grad():
                _, states, _ = model.step(x[t], states, timing.dt_ms, online=True)
            continue
        # constants rebuilt per step: each step's backward frees its graph
        out, states, _ = model.step(x[t], states, timing.dt_ms, online=True)
        # this step's term of the offline loss
        loss = F.mse_loss(out, target[t]) / T if target is not None else F.cross_entropy(out, y) / R
        loss.backward()
        total += float(loss.detach())
        outs.append(out.detach())
    stacked = torch.stack(outs)
    return total, stacked if waveform else stacked.mean(0)


def spiking_gamma(model: nn.Module, data: Any, *, epochs: int = 10, mode: str = "offline",
                  frame_ms: float = 4.0, dt_ms: float = 1.0, readout_ms: float | None = None, lr: float = 1e-2,
                  batch_size: int = 64, validation: Any = None, seed: int = 0, progress: bool = True,
                  max_grad_norm: float = 1.0) -> nn.Module:
    """Train a sequence model (returns ``model``, trained in place, with ``model.history``: a
    :class:`SequenceHistory`).

    Args:
        model: a :class:`~isospike.models.SpikingGammaNet` (offline or online) or any module
            ``model(x_seq [T, B, F], dt_ms) -> [T, B, n_out]`` (offline; e.g. the LIF baseline).
        data: (frames ``[N, L, F]``, targets): class labels ``[N]`` (cross-entropy over the
            read-out window) or target frames ``[N, L, n_out]`` (mean squared error at every step).
        mode: "offline" (BPTT) or "online" (see the module docstring).
        frame_ms: how long each frame is held, ms (see :class:`SequenceTiming`).
        dt_ms: the simulation step, ms.
        readout_ms: the read-out window at the end of each sequence, ms (None: its last quarter).
        validation: (frames, labels) evaluated after each epoch (classification).
    """
    if mode not in ("offline", "online"):
        raise ValueError(f"mode must be 'offline' or 'online', got {mode!r}")
    if mode == "online" and not isinstance(model, SpikingGammaNet):
        raise TypeError("online training needs a SpikingGammaNet (its memory carries the eligibility traces)")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    x, y = _pair(data)
    timing = SequenceTiming(frame_ms, dt_ms, readout_ms)
    timing.readout_steps(x.shape[1])  # validates the timing before any work
    waveform = y.is_floating_point()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * math.ceil(len(x) / batch_size)))
    history = SequenceHistory(mode)
    online = model if mode == "online" and isinstance(model, SpikingGammaNet) else None  # online mode: checked above
    bar = tqdm(range(epochs), desc=f"{type(model).__name__} ({mode})", disable=not progress)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            fb, yb = x[idx], y[idx]
            opt.zero_grad()
            loss, out = _online_batch(online, fb, yb, timing) if online is not None else _offline_batch(model, fb, yb, timing)
            if max_grad_norm:
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            opt.step()
            sched.step()
            loss_sum += loss * len(idx)
            if not waveform:
                correct += int((out.argmax(-1) == yb).sum())
        ep = SequenceEpoch(epoch + 1, loss_sum / len(x), float("nan") if waveform else correct / len(x))
        if validation is not None and not waveform:
            ep.val_accuracy = evaluate_sequences(model, validation, frame_ms=frame_ms, dt_ms=dt_ms,
                                                 readout_ms=readout_ms)["accuracy"]
        history.epochs.append(ep)
        bar.set_postfix(loss=f"{ep.loss:.4g}", acc=f"{ep.train_accuracy:.3f}")
    model.eval()
    model.history = history  # type: ignore[assignment]  # torch types Module.__setattr__ values as Tensor | Module
    return model


def evaluate_sequences(model: nn.Module, data: Any, *, frame_ms: float = 4.0, dt_ms: float = 1.0,
                       readout_ms: float | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Accuracy and spikes per sample-second of each population at step ``dt_ms``.

    Returns ``{"accuracy", "dt_ms", "steps", "spikes_per_sample", "spikes_per_second",
    "spikes_per_second_by_population"}``."""
    x, y = _pair(data)
    timing = SequenceTiming(frame_ms, dt_ms, readout_ms)
    R = timing.readout_steps(x.shape[1])
    correct, spikes, steps = 0, 0, 0
    by_pop: dict[str, int] = {}
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            # the models this takes define run(x_seq, dt_ms) -> GammaRun (SpikingGammaNet, LIFSequenceNet)
            run_model = cast(Callable[[Tensor, float], GammaRun], model.run)
            run = run_model(frames_to_steps(x[i:i + batch_size], frame_ms, dt_ms), dt_ms)
            correct += int((run.outputs[-R:].mean(0).argmax(-1) == y[i:i + batch_size]).sum())
            steps = run.steps
            for p, n in run.spikes.items():
                by_pop[p] = by_pop.get(p, 0) + n
                spikes += n
    seconds = len(x) * steps * dt_ms / 1000.0
    return {
        "accuracy": correct / max(len(x), 1), "dt_ms": dt_ms, "steps": steps,
        "spikes_per_sample": spikes / max(len(x), 1),
        "spikes_per_second": spikes / seconds if seconds else 0.0,
        "spikes_per_second_by_population": {p: n / seconds if seconds else 0.0 for p, n in by_pop.items()},
    }


def gradient_alignment(model: SpikingGammaNet, data: Any, *, frame_ms: float = 4.0, dt_ms: float = 1.0,
                       readout_ms: float | None = None) -> dict[str, float]:
    """Cosine similarity between the online gradient and the BPTT gradient of the same loss on
    ``data`` (one batch), per parameter (name -> cosine; 1.0: identical directions). The
    parameters are left unchanged; their gradients are zeroed."""
    x, y = _pair(data)
    timing = SequenceTiming(frame_ms, dt_ms, readout_ms)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    _offline_batch(model, x, y, timing)
    bptt = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
    model.zero_grad()
    _online_batch(model, x, y, timing)
    online = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
    model.zero_grad()
    out = {}
    for n, g in bptt.items():
        o = online.get(n, torch.zeros_like(g))
        denom = float(g.norm() * o.norm())
        out[n] = float((g * o).sum()) / denom if denom > 0 else 0.0
    return out
