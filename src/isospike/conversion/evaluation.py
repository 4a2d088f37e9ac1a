"""Accuracy and activity of a spiking network as a function of the number of time steps."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from isospike.conversion.network import SpikingNetwork
from isospike.observe import counting


@dataclass(frozen=True)
class TimestepEvaluation:
    """Results after ``timesteps`` steps: top-1 ``accuracy`` in [0, 1], and the mean number of
    spikes and effective synaptic operations per sample."""

    timesteps: int
    accuracy: float
    spikes_per_sample: float
    synaptic_ops_per_sample: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_over_time(
    snn: SpikingNetwork, data: Any, timesteps: Sequence[int], batch_size: int = 500, progress: bool = False,
    count: bool = True,
) -> list[TimestepEvaluation]:
    """Evaluate ``snn`` on labelled ``data`` ((x, y) or LabelledData) after each T in
    ``timesteps`` from a single simulation of max(timesteps) steps.

    The dynamics are causal and their parameters do not depend on T, so the first T steps of a
    long run are exactly a run of T steps; the decoded output after T steps is the mean of the
    first T per-step outputs. ``count=False`` measures accuracy only (the same outputs, without
    observing spikes and synaptic operations, which are then NaN)."""
    ts = sorted({int(t) for t in timesteps})
    if not ts or ts[0] < 1:
        raise ValueError(f"timesteps must be positive integers, got {list(timesteps)}")
    x, y = data
    t_max = ts[-1]
    correct = {t: 0 for t in ts}
    chunks = range(0, len(x), batch_size)
    observer = counting(snn) if count else contextlib.nullcontext(None)
    with torch.no_grad(), observer as c:
        for i in tqdm(chunks, desc=f"simulating T={t_max}", disable=not progress, leave=False):
            steps = snn.forward_steps(x[i:i + batch_size], timesteps=t_max)
            if not isinstance(steps, torch.Tensor):
                raise TypeError("evaluate_over_time needs a network with a single tensor output")
            running = steps.cumsum(0)
            for t in ts:
                correct[t] += int((running[t - 1].argmax(-1) == y[i:i + batch_size]).sum())
    n = max(len(x), 1)
    if c is None:
        return [TimestepEvaluation(t, correct[t] / n, math.nan, math.nan) for t in ts]
    stats = c.layers
    results = []
    for t in ts:
        spikes = sum(sum(s.by_step[:t]) for s in stats.values() if s.kind == "neuron")
        ops = sum(sum(s.by_step[:t]) for s in stats.values() if s.kind != "neuron")
        results.append(TimestepEvaluation(t, correct[t] / n, spikes / n, ops / n))
    return results
