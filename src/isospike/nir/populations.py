"""Neuron populations for the NIR nodes other libraries export: LIF, CubaLIF, LI and IF with NIR's
reset-to-``v_reset``, optionally with a recurrent weight (snnTorch's RLeaky / RSynaptic).

NIR describes continuous-time neurons; a reader picks the time step ``dt``. These populations
integrate them with forward Euler, the discretization snnTorch's exporter and importer use
(dt = 1e-4 s there):

    I[t] = (1 - dt/tau_syn) I[t-1] + (dt w_in / tau_syn) x[t]           (CubaLIF only; x = input)
    v[t] = (1 - dt/tau) v[t-1] + (dt / tau) v_leak + (dt r / tau) d[t]  (d = I[t] or x[t])
    s[t] = v[t] > v_threshold ;  v[t] = v_reset where s[t]             (LI: no spike, output v)

A recurrent weight W adds W s[t-1] to the neuron's input. Scale factors an exporter writes from
float32 rates (dt r / tau = 0.9999997 for snnTorch's r = tau / dt) are taken as 1 when within
1e-5 of it, so the arithmetic is the source library's own.

Other libraries run the same nodes with their own dynamics (:func:`isospike.nir.load`'s
``convention``): the builders then give the decays and input factors the library computes
(``decay``, ``scale``, ``syn_decay``, ``syn_scale``) and the way it spikes and resets:

* ``reset="subtract"``: V <- V - theta per spike (sinabs, rockpool) instead of V <- v_reset;
* ``multi_spike``: floor(V / theta) spikes in a step where V >= theta (sinabs' MultiSpike, rockpool);
* ``synapse_inside``: I <- syn_decay (I + x) (rockpool's LIFTorch) instead of syn_decay I + x;
* ``snntorch_reset`` ("leaky" or "synaptic"): snnTorch's reset, driven by the previous step's
  membrane (``reset_delay=True``, its default) and, without delay, corrected right after the spike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.neurons.populations import SpikingPopulation, folded_activity
from isospike.neurons.surrogate import spike

SNAP = 1e-5  # |factor - 1| below which an exported scale factor is exactly 1


def _param(values: Any, name: str, where: str) -> Tensor:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"NIR node {where!r}: {name} must be finite numbers, got {arr.ravel()[:4].tolist()}")
    return torch.as_tensor(arr)


def _snapped(factor: Tensor) -> Tensor:
    return torch.where((factor - 1).abs() < SNAP, torch.ones_like(factor), factor)


class NIRNeurons(SpikingPopulation):
    """A population of NIR LIF / CubaLIF / LI / IF neurons, time-folded (``[T * batch, ...]`` in
    and out; ``static_input``: a constant ``[batch, ...]`` input repeated over the steps).

    Output: spikes (1.0) per step, or the membrane for LI. Counts like every population."""

    decay: Tensor
    scale: Tensor
    leak_term: Tensor
    threshold: Tensor
    v_reset: Tensor
    syn_decay: Tensor
    syn_scale: Tensor
    recurrent: nn.Module | None

    def __init__(self, kind: str, dt: float, where: str, static_input: bool, *, tau: Any = None, r: Any = 1.0,
                 v_leak: Any = 0.0, v_threshold: Any = None, v_reset: Any = 0.0, tau_syn: Any = None,
                 w_in: Any = 1.0, recurrent: nn.Module | None = None, decay: Any = None, scale: Any = None,
                 syn_decay: Any = None, syn_scale: Any = None, reset: str = "value", multi_spike: bool = False,
                 synapse_inside: bool = False, snntorch_reset: str | None = None, reset_delay: bool = True) -> None:
        super().__init__()
        if reset not in ("value", "subtract") or snntorch_reset not in (None, "leaky", "synaptic", "zero_leaky",
                                                                        "zero_synaptic"):
            raise ValueError(f"unknown reset {reset!r} / {snntorch_reset!r}")
        self.reset_mode, self.multi_spike, self.synapse_inside = reset, multi_spike, synapse_inside
        self.snntorch_reset, self.reset_delay = snntorch_reset, reset_delay
        if kind not in ("lif", "cuba_lif", "li", "if"):
            raise ValueError(f"unknown NIR neuron kind {kind!r}")
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive time step in seconds, got {dt!r}")
        self.kind, self.static_input, self.where = kind, static_input, where
        decay_given, scale_given = decay, scale
        if kind == "if":  # dv/dt = r I: no leak (tau drops out of Euler with dt/tau r -> r dt, here r)
            decay, scale, leak = torch.ones(()), _param(r, "r", where), torch.zeros(())
        else:
            tau_t = _param(tau, "tau", where)
            if (tau_t <= 0).any():
                raise ValueError(f"NIR node {where!r}: tau must be > 0")
            decay = 1 - dt / tau_t
            scale = _snapped(dt * _param(r, "r", where) / tau_t)
            leak = dt / tau_t * _param(v_leak, "v_leak", where)
        if decay_given is not None:  # a library's own discretisation (the builder computed it)
            decay, scale = _param(decay_given, "decay", where), _param(scale_given, "scale", where)
        self.register_buffer("decay", decay.float())
        self.register_buffer("scale", scale.float())
        self.register_buffer("leak_term", leak.float())
        self.has_leak_term = bool((leak != 0).any())
        self.spiking = kind != "li"
        self.register_buffer("threshold", _param(v_threshold if self.spiking else 0.0, "v_threshold", where).float())
        self.register_buffer("v_reset", _param(v_reset, "v_reset", where).float())
        self.current = kind == "cuba_lif"
        if self.current:
            tau_s = _param(tau_syn, "tau_syn", where)
            if (tau_s <= 0).any():
                raise ValueError(f"NIR node {where!r}: tau_syn must be > 0")
            if syn_decay is not None:
                self.register_buffer("syn_decay", _param(syn_decay, "syn_decay", where).float())
                self.register_buffer("syn_scale", _param(syn_scale, "syn_scale", where).float())
            else:
                self.register_buffer("syn_decay", (1 - dt / tau_s).float())
                self.register_buffer("syn_scale", _snapped(dt * _param(w_in, "w_in", where) / tau_s).float())
        self.recurrent = recurrent

    def _recurrence(self, s: Tensor) -> Tensor | None:
        return self.recurrent(s) if self.recurrent is not None else None

    @staticmethod
    def _times(factor: Tensor, x: Tensor) -> Tensor:
        return x if factor.numel() == 1 and float(factor) == 1.0 else factor * x

    def forward(self, x: Tensor, timesteps: int) -> Tensor:
        T = timesteps
        seq = x.unsqueeze(0).expand(T, *x.shape) if self.static_input else x.reshape(T, x.shape[0] // T, *x.shape[1:])
        v = torch.zeros_like(seq[0])
        syn = torch.zeros_like(seq[0]) if self.current else None
        s = torch.zeros_like(seq[0])
        th = self.threshold.to(v.dtype)
        snn_reset = self.snntorch_reset
        out = []
        for t in range(T):
            # sums associated as the source libraries write them: (decay * state + input) + recurrence
            rec = self._recurrence(s)
            r = (v > th).to(v.dtype) if snn_reset is not None else None  # snnTorch: the previous step's reset
            if snn_reset == "zero_leaky" and r is not None:
                v = (1 - r) * v
            if syn is not None:
                if self.synapse_inside:  # rockpool: I <- beta (I + x)
                    syn = syn + self._times(self.syn_scale, seq[t])
                    syn = self.syn_decay * syn
                else:
                    syn = self.syn_decay * syn + self._times(self.syn_scale, seq[t])
                if rec is not None:
                    syn = syn + self._times(self.syn_scale, rec)
                v = self.decay * v + self._times(self.scale, syn)
            else:
                v = self.decay * v + self._times(self.scale, seq[t])
                if rec is not None:
                    v = v + self._times(self.scale, rec)
            if self.has_leak_term:
                v = v + self.leak_term
            if r is not None:
                if snn_reset in ("leaky", "synaptic"):
                    v = v - r * th
                elif snn_reset == "zero_synaptic":
                    v = v - v * r
            if self.spiking:
                if self.multi_spike:
                    s = (v >= th).to(v.dtype) * torch.div(v, th, rounding_mode="floor")
                else:
                    s = spike(v, th, strict=True)
                if r is not None:
                    if not self.reset_delay:  # snnTorch resets right after the spike (the previous reset counted)
                        d = s.detach() - r
                        v = v - d * th if snn_reset in ("leaky", "synaptic") else v - d * v
                elif self.reset_mode == "subtract":
                    v = v - s.detach() * th
                else:
                    v = torch.where(s.detach() > 0, self.v_reset.to(v.dtype).expand_as(v), v)
                out.append(s)
            else:
                out.append(v)
        return torch.stack(out).reshape(-1, *seq.shape[2:])

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        """One call's spikes per step (LI neurons send their membrane: no spikes)."""
        T = args[1]
        per_step = None if self.spiking else torch.zeros(T, dtype=torch.int64)
        if self.spiking and self.multi_spike:  # a step's output holds its spike count
            per_step = output.detach().reshape(T, -1).sum(1).round().to(torch.int64)
        return folded_activity(output, T, per_step)

    def extra_repr(self) -> str:
        rec = ", recurrent" if self.recurrent is not None else ""
        how = f", {self.snntorch_reset} reset" if self.snntorch_reset else (", subtract" if self.reset_mode == "subtract"
                                                                            else "")
        return f"{self.kind}{rec}{how}{', multi-spike' if self.multi_spike else ''}, static_input={self.static_input}"
