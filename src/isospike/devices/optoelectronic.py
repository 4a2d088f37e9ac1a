"""Optoelectronic synapses whose output decays after a light pulse (Otters / Otters++).

A device is excited at the start of a TTFS window; its output O(t) then decays by itself. A
presynaptic spike at time t reads the device: the read value O(t) (times the synaptic scale) is
what the postsynaptic membrane integrates -- the decay *is* the TTFS temporal term, no digital
exponential or multiply. The curve is normalized so that O(0) = 1.

Curves come from measured (time, value) samples (monotone piecewise-cubic interpolation, PCHIP)
or from a fitted formula. Run-to-run variation is a multiplicative noise on reads, sampled per
read, per device or per run.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Granularity = Literal["read", "device", "run"]

# Otters (Yan et al., ICLR 2026), measured In2O3 optoelectronic synapse, stretched-exponential fit
# O(t) = I0 exp(-(t / tau)^beta) + I_offset; O(0) = 1. The time unit is not stated in the sources.
IN2O3_FIT = {"I0": 110.989, "tau": 1.3425, "beta": 0.495, "I_offset": -109.989}
IN2O3_SOURCE = ("Otters (Yan et al., ICLR 2026, arXiv 2509.18968): In2O3 thin-film optoelectronic synapse, decay "
                "fitted by differential evolution to O(t) = 110.989 exp(-(t/1.3425)^0.495) - 109.989")


@dataclass(frozen=True)
class DeviceVariation:
    """Run-to-run variation of the reads: O_read = O(t) (1 + u), u ~ N(0, sigma^2) ("gaussian")
    or U(-sigma, sigma) ("uniform"), drawn per read, per device (fixed per synapse within a run)
    or per run (one factor for everything)."""

    sigma: float
    kind: Literal["gaussian", "uniform"] = "gaussian"
    granularity: Granularity = "read"

    def __post_init__(self) -> None:
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        if self.kind not in ("gaussian", "uniform"):
            raise ValueError(f"kind must be 'gaussian' or 'uniform', got {self.kind!r}")
        if self.granularity not in ("read", "device", "run"):
            raise ValueError(f"granularity must be 'read', 'device' or 'run', got {self.granularity!r}")

    def factors(self, shape: torch.Size, generator: torch.Generator | None = None) -> Tensor:
        """Multiplicative factors (1 + u) of ``shape`` (broadcastable when per run)."""
        draw_shape = (1,) * len(shape) if self.granularity == "run" else shape
        if self.kind == "gaussian":
            u = torch.randn(draw_shape, generator=generator) * self.sigma
        else:
            u = (torch.rand(draw_shape, generator=generator) * 2 - 1) * self.sigma
        return 1 + u


class OptoelectronicSynapse:
    """A decaying synapse: ``O(t)`` for t >= 0 (float64 numpy or torch), O(0) = 1, decreasing.

    Build with :meth:`in2o3` (the Otters fit), :meth:`from_samples` or :meth:`from_csv`
    (measured curves), or :meth:`from_function`. ``variation`` adds run-to-run read noise.
    """

    def __init__(self, curve: Callable[[np.ndarray], np.ndarray], t_end: float, name: str, source: str,
                 variation: DeviceVariation | None = None) -> None:
        self._curve = curve
        self.t_end = float(t_end)  # O reaches 0 (or its last sample) here
        self.name = name
        self.source = source
        self.variation = variation
        o0 = float(curve(np.array([0.0]))[0])
        if not math.isclose(o0, 1.0, rel_tol=1e-6):
            raise ValueError(f"the curve must be normalized to O(0) = 1, got {o0}")
        grid = np.linspace(0.0, self.t_end, 2049)
        if np.any(np.diff(curve(grid)) > 1e-12):
            raise ValueError("the decay curve must be non-increasing on [0, t_end]")

    # ---------------------------------------------------------------- constructors
    @classmethod
    def in2o3(cls, variation: DeviceVariation | None = None) -> OptoelectronicSynapse:
        """The In2O3 synapse of Otters, fitted curve (see ``IN2O3_SOURCE``)."""
        p = IN2O3_FIT

        def curve(t: np.ndarray) -> np.ndarray:
            t = np.asarray(t, dtype=np.float64)
            return np.maximum(p["I0"] * np.exp(-np.power(np.maximum(t, 0.0) / p["tau"], p["beta"])) + p["I_offset"], 0.0)

        t_end = p["tau"] * (math.log(p["I0"] / -p["I_offset"])) ** (1.0 / p["beta"])  # O(t_end) = 0
        return cls(curve, t_end, "In2O3 (Otters fit)", IN2O3_SOURCE, variation)

    @classmethod
    def from_samples(cls, times, values, name: str = "measured", source: str = "user samples",
                     variation: DeviceVariation | None = None) -> OptoelectronicSynapse:
        """Monotone (PCHIP) interpolation of measured samples, normalized by the value at the
        first time (which becomes t = 0). Values must not increase with time."""
        from scipy.interpolate import PchipInterpolator

        t = np.asarray(times, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        if t.ndim != 1 or t.shape != v.shape or len(t) < 2:
            raise ValueError("times and values must be 1-d sequences of the same length (>= 2)")
        order = np.argsort(t)
        t, v = t[order] - t[order][0], v[order]
        if np.any(np.diff(t) <= 0):
            raise ValueError("sample times must be distinct")
        if v[0] <= 0:
            raise ValueError("the first sample (t = 0) must be positive")
        v = v / v[0]
        if np.any(np.diff(v) > 1e-12):
            raise ValueError("sample values must not increase with time (a decay curve)")
        interp = PchipInterpolator(t, v, extrapolate=False)

        def curve(x: np.ndarray) -> np.ndarray:
            x = np.clip(np.asarray(x, dtype=np.float64), 0.0, t[-1])
            return np.maximum(interp(x), 0.0)

        return cls(curve, float(t[-1]), name, source, variation)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, variation: DeviceVariation | None = None) -> OptoelectronicSynapse:
        """Read ``time,value`` rows (a header row is allowed) and interpolate them."""
        times, values = [], []
        with open(path, newline="") as f:
            for row in csv.reader(f):
                if not row or row[0].strip().startswith("#"):
                    continue
                try:
                    times.append(float(row[0]))
                    values.append(float(row[1]))
                except (ValueError, IndexError):
                    if times:
                        raise ValueError(f"{path}: bad row {row!r}; expected two numbers: time,value") from None
        return cls.from_samples(times, values, name=os.path.basename(str(path)), source=str(path), variation=variation)

    @classmethod
    def from_function(cls, fn: Callable[[np.ndarray], np.ndarray], t_end: float, name: str = "custom",
                      source: str = "user function", variation: DeviceVariation | None = None) -> OptoelectronicSynapse:
        return cls(fn, t_end, name, source, variation)

    # ---------------------------------------------------------------- use
    def __call__(self, t) -> np.ndarray:
        return self._curve(np.asarray(t, dtype=np.float64))

    def slot_times(self, timesteps: int) -> np.ndarray:
        """t_k with O(t_k) = (T - k) / T for k = 0..T (t_0 = 0, t_T = where O reaches 0): the
        read times that make the nominal device deliver the T + 1 uniform levels. float64 [T+1]."""
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        out = np.zeros(timesteps + 1)
        for k in range(1, timesteps + 1):
            target = (timesteps - k) / timesteps
            lo, hi = 0.0, self.t_end
            for _ in range(200):  # bisection on the monotone curve
                mid = 0.5 * (lo + hi)
                if self(np.array([mid]))[0] > target:
                    lo = mid
                else:
                    hi = mid
            out[k] = hi
        return out

    def slot_reads(self, timesteps: int) -> Tensor:
        """Nominal read value at each slot k = 0..T: O(t_k) (float64 [T+1]); ~(T - k)/T."""
        return torch.from_numpy(self(self.slot_times(timesteps)))

    def with_variation(self, variation: DeviceVariation | None) -> OptoelectronicSynapse:
        return OptoelectronicSynapse(self._curve, self.t_end, self.name, self.source, variation)

    def __repr__(self) -> str:
        return f"OptoelectronicSynapse({self.name!r}, variation={self.variation})"
