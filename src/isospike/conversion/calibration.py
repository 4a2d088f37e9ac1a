"""Calibration data handling and activation statistics (thresholds, ranges)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from isospike.batches import CalibrationData, calibration_batches


def first_batch(calibration: CalibrationData) -> Tensor:
    return next(iter(calibration_batches(calibration, batch_size=64)))


class ActivationSampler:
    """Keeps a bounded, seeded random sample of the values a set of modules output.

    ``max_samples`` values per module are kept (all of them while fewer were seen), enough for a
    percentile estimate whose error is far below one quantization level.
    """

    def __init__(self, modules: dict[str, nn.Module], max_samples: int = 1 << 21, seed: int = 0) -> None:
        self.samples: dict[str, list[Tensor]] = {name: [] for name in modules}
        self.maxima: dict[str, float] = {name: float("-inf") for name in modules}
        self.minima: dict[str, float] = {name: float("inf") for name in modules}
        self.max_samples = max_samples
        self.generator = torch.Generator().manual_seed(seed)
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
            self.add(name, output)

        return hook

    def add(self, name: str, output: Tensor) -> None:
        """Sample the values of ``output`` for ``name`` (a new name starts its own sample)."""
        values = output.detach().reshape(-1).to(torch.float32)
        if values.numel() == 0:
            return
        self.samples.setdefault(name, [])
        self.maxima[name] = max(self.maxima.get(name, float("-inf")), float(values.max()))
        self.minima[name] = min(self.minima.get(name, float("inf")), float(values.min()))
        budget = self.max_samples // 8  # per batch, so later batches are represented too
        if values.numel() > budget:
            idx = torch.randint(values.numel(), (budget,), generator=self.generator)
            values = values[idx]
        self.samples[name].append(values.clone())

    def remove(self) -> None:
        for h in self._handles:
            h.remove()

    def percentile(self, name: str, q: float) -> float:
        """The ``q``-th percentile (0-100) of the sampled values of module ``name``."""
        values = torch.cat(self.samples[name]) if self.samples[name] else torch.zeros(1)
        if len(values) > self.max_samples:
            idx = torch.randint(len(values), (self.max_samples,), generator=self.generator)
            values = values[idx]
        return float(np.percentile(values.numpy(), q))


def sample_activations(
    model: nn.Module, modules: dict[str, nn.Module], calibration: CalibrationData, batch_size: int = 256, seed: int = 0
) -> ActivationSampler:
    """Run ``calibration`` through ``model`` (eval, no grad) and sample each module's outputs."""
    sampler = ActivationSampler(modules, seed=seed)
    try:
        with torch.no_grad():
            for batch in calibration_batches(calibration, batch_size):
                model(batch)
    finally:
        sampler.remove()
    return sampler


def activation_spans(model: nn.Module, paths: list[str], calibration: CalibrationData, percentile: float,
                     coding: str, batch_size: int = 256, max_at_100: bool = True) -> tuple[dict[str, float], list[str]]:
    """Each activation's span on the calibration data: the ``percentile``-th percentile of its
    outputs (with ``max_at_100``, the exact maximum at 100), 1.0 for those never positive, which
    are returned too and warned about. Returns ({path: span}, silent paths)."""
    sampler = sample_activations(model, {p: model.get_submodule(p) for p in paths}, calibration, batch_size)
    spans: dict[str, float] = {}
    silent: list[str] = []
    for p in paths:
        top = sampler.maxima[p] if max_at_100 and percentile >= 100 else sampler.percentile(p, percentile)
        if not top > 0:
            top = 1.0  # never active on the calibration data: any positive span codes it exactly
            silent.append(p)
        spans[p] = float(top)
    warn_silent_activations(silent, coding, stacklevel=4)
    return spans, silent


def warn_silent_activations(paths: list[str], coding: str, stacklevel: int = 3) -> None:
    """Warn that some activations never turned positive on the calibration data: their scale
    is a placeholder (1.0), and inputs that do drive them will be coded against it."""
    if paths:
        import warnings

        shown = ", ".join(repr(p) for p in paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        warnings.warn(f"{coding}: {len(paths)} activation(s) never positive on the calibration data ({shown}); their "
                      "threshold defaults to 1.0 -- calibrate with representative inputs", stacklevel=stacklevel)
