"""TTFS coding's population (Otters / Otters++; M-TTFS of Matterhorn with a silent level).

During its window of T steps a neuron compares its membrane V (the synaptic integration of the
previous layer's device reads) with a staircase threshold and fires at the first step k where
V >= theta_k, i.e. level q = T - k (silent: q = 0). Its spike is read by the next layer's
synapses at the slot time t_k: the device returns O(t_k) (with its run-to-run variation, if
any), scaled by scale * T -- exactly the QNN level for the nominal device. Masked TTFS sends
another level as silence (:mod:`isospike.coding.mttfs`: the codes of that level and 0 swapped,
a dead zone around it); the receivers fold its value into their bias.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.coding.mttfs import Silence, apply_dead_zone, check_silence, lowest_level, spike_code
from isospike.coding.ttfs import Rounding, level_of, level_table
from isospike.devices import DeviceVariation, OptoelectronicSynapse
from isospike.neurons.populations import SpikingPopulation
from isospike.neurons.surrogate import straight_through


class TTFSPopulation(SpikingPopulation):
    """A TTFS neuron population (one pass: the window is resolved inside).

    Input: membrane potentials V (any shape, float32). Output: what the next layer's synapses
    read for each neuron -- ``scale * T * O(t_k)`` at its spike slot k (0 when silent), signed
    for two-channel layers. :meth:`activity` counts spikes per slot and neuron updates (neurons x T).

    ``silent_level`` is the level sent as silence (0: plain TTFS), ``dead_zone`` the levels around
    it also sent as silence, and ``silence`` the rule that chose it (:data:`isospike.coding.mttfs.
    Silence`: "zero", "lowest" -- the Matterhorn paper's TTFS baseline, -T on signed layers -- or
    "mode" for M-TTFS; default: inferred from the level). A "zero" or "lowest" rule must match
    ``silent_level`` (checked, also when a saved network is loaded).
    """

    label = "TTFS neurons"
    silent_level: Tensor  # buffers registered in __init__
    slot_reads: Tensor

    def __init__(self, timesteps: int, scale: float, rounding: Rounding = "round", signed: bool = False,
                 device: OptoelectronicSynapse | None = None, silent_level: int | Tensor = 0, dead_zone: int = 0,
                 silence: Silence | None = None, sample_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        # what a receiving synapse's folded offset is shaped like (per-channel silent levels);
        # known at construction when the converter measured it, else set by the first forward
        self.sample_shape = None if sample_shape is None else tuple(int(d) for d in sample_shape)
        if dead_zone < 0:
            raise ValueError(f"dead_zone must be >= 0, got {dead_zone}")
        m = torch.as_tensor(silent_level, dtype=torch.int64)
        if (m != 0).any() or dead_zone:
            if device is not None:
                what = "the TTFS baseline with the lowest level silent (silence='lowest')" if silence == "lowest" \
                    else "masked TTFS"
                raise ValueError(f"{what} decodes spikes with a digital level table: use device=None "
                                 "(the memristive crossbar of isospike.devices is its analog synapse)")
            if int(m.abs().max()) > timesteps or (not signed and int(m.min()) < 0):
                raise ValueError(f"silent_level must be a level in {'-T..T' if signed else '0..T'} (T = {timesteps})")
        # the rule that chose the silent level (see isospike.coding.mttfs.Silence); None: inferred
        if silence is None:
            silence = "mode" if bool((m != 0).any()) or dead_zone else "zero"
        silence = check_silence(silence)
        if silence != "mode" and bool((m != (0 if silence == "zero" else lowest_level(timesteps, signed))).any()):
            raise ValueError(f"silence={silence!r} sends level {0 if silence == 'zero' else lowest_level(timesteps, signed)} "
                             f"as silence, but silent_level is {m.tolist()}")
        self.silence: Silence = silence
        self.register_buffer("silent_level", m)
        self.dead_zone = int(dead_zone)
        self._masked = bool((m != 0).any()) or self.dead_zone > 0  # fixed at construction (a graph never asks)
        self.window = int(timesteps)
        self.scale = float(scale)
        self.rounding: Rounding = rounding
        self.signed = signed
        self.device = device
        reads = device.slot_reads(timesteps).float() if device is not None else \
            (timesteps - torch.arange(timesteps + 1, dtype=torch.float32)) / timesteps
        self.register_buffer("slot_reads", reads)
        self.generator: torch.Generator | None = None

    def thresholds(self) -> Tensor:
        """theta_k for k = 0..T-1 (decreasing): the staircase the membrane is compared with."""
        table = self.levels()
        th = (table[1:] + table[:-1]) / 2 if self.rounding == "round" else table[1:]
        return th.flip(0)

    def levels(self) -> Tensor:
        """The value of each level q = 0..T (:func:`isospike.coding.ttfs.level_table`)."""
        return level_table(self.scale, self.slot_reads)

    @property
    def masked(self) -> bool:
        """True when silence stands for a level other than 0 (M-TTFS, or the lowest level of a signed
        layer under ``silence="lowest"``) or a dead zone is on: receivers fold the silent value."""
        return self._masked

    def silent_values(self) -> Tensor:
        """Decoded value of the silent level (per channel when the silent level is a tensor)."""
        m = self.silent_level
        return (m.sign() * self.scale * self.window * self.slot_reads[self.window - m.abs()]).to(torch.float32)

    def first_crossings(self, v: Tensor) -> Tensor:
        """The slot k = 0..T-1 at which each neuron's membrane ``v`` first crosses the staircase, T
        when it never does: its level is q = T - k (int64, ``v``'s shape; signed layers: of |v|)."""
        mag = v.abs() if self.signed else v
        return self.window - level_of(mag.detach(), self.levels().to(mag.dtype), self.rounding)

    def signed_levels(self, v: Tensor, slot: Tensor | None = None) -> Tensor:
        """The level each neuron codes before any masking (int64, ``v``'s shape): T - its first
        crossing (``slot``, computed when not given), negative where v < 0 on signed layers."""
        q = self.window - (self.first_crossings(v) if slot is None else slot)
        return torch.where(v < 0, -q, q) if self.signed else q

    def level_counts(self, v: Tensor, per_channel: bool = False) -> Tensor:
        """How many neurons of ``v`` code each signed level q = -T..T before any masking (int64,
        index q + T, 2T + 1 long): what :func:`isospike.coding.mttfs.most_frequent_counted_level`
        reads. ``per_channel``: one histogram per channel of dim 1 of ``v`` [batch, C, ...], shape
        [C, 2T + 1]."""
        index, bins = self.signed_levels(v) + self.window, 2 * self.window + 1
        if not per_channel:
            return torch.bincount(index.flatten(), minlength=bins)
        return torch.stack([torch.bincount(row, minlength=bins) for row in index.movedim(1, 0).reshape(v.shape[1], -1)])

    def masked_levels(self, v: Tensor, slot: Tensor) -> Tensor:
        """The signed level each neuron sends (dead zone applied), from its first crossing ``slot``."""
        return apply_dead_zone(self.signed_levels(v, slot), self.silent_level, self.dead_zone)

    def spike_slots(self, v: Tensor) -> Tensor:
        """The slot at which each neuron spikes, T when it is silent (under masked TTFS the silent
        level sends no spike and the code of level 0 fires in its place)."""
        slot = self.first_crossings(v)
        if not self.masked:
            return slot
        code = spike_code(self.masked_levels(v, slot), self.silent_level)
        return torch.where(code != 0, self.window - code.abs(), torch.full_like(code, self.window))

    def forward(self, v: Tensor, timesteps: int | None = None) -> Tensor:
        """What the next layer's synapses read for each neuron (see the class docstring).
        ``timesteps`` is the network's (unused: a TTFS population runs its own window). Under
        autograd the gradient is the QNN's straight-through one, inside the level range."""
        T = self.window
        if self.sample_shape is None:
            self.sample_shape = tuple(v.shape[1:])
        slot = self.first_crossings(v)
        if self.masked:
            q = self.masked_levels(v, slot)
            value = self.scale * T * self.slot_reads[T - q.abs()]
            if self.signed:
                value = torch.where(q < 0, -value, value)
        else:
            reads = self.slot_reads
            if self.device is not None and self.device.variation is not None:
                var: DeviceVariation = self.device.variation
                shape = slot.shape if var.granularity == "read" else slot.shape[1:] if var.granularity == "device" else ()
                factors = var.factors(torch.Size(shape) if shape else torch.Size([1]), self.generator)
                value = self.scale * T * reads[slot] * factors.to(reads.dtype)
                value = torch.where(slot < T, value, torch.zeros_like(value))
            else:  # the same products, on the T + 1 slots (silence reads 0), then looked up: equal values
                table = self.scale * T * reads
                table[T] = 0.0
                value = table[slot]
            if self.signed:
                value = torch.sign(v.detach()) * value
        if not (torch.is_grad_enabled() and v.requires_grad):  # no gradient to route: the values
            return value.to(v.dtype)
        top = self.scale * T
        return straight_through(v, value.to(v.dtype), (v <= top) & (v >= (-top if self.signed else 0.0)))

    def events(self, v: Tensor) -> Tensor:
        """Spikes each neuron sends (0 or 1), float64, ``v``'s shape."""
        return (self.spike_slots(v) < self.window).to(torch.float64)

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        """One call's spikes (one per neuron at most), per slot of the window, from its input."""
        v, T = args[0], self.window
        slots = self.spike_slots(v)
        counts = torch.bincount(slots.flatten(), minlength=T + 1)[:T]
        rows = v.shape[0] if v.dim() else 1
        return LayerActivity("", "neuron", neurons=math.prod(v.shape[1:]) if v.dim() else 1,
                             neuron_updates=v.numel() * T, spikes=int(counts.sum()), timesteps=T, samples=rows,
                             by_step=counts.tolist())

    def extra_repr(self) -> str:
        dev = self.device.name if self.device is not None else "ideal"
        extra = f", silence={self.silence}, silent_level={self.silent_level.tolist()}, dead_zone={self.dead_zone}" \
            if self.masked else ""
        return f"T={self.window}, scale={self.scale:.4g}, rounding={self.rounding}, signed={self.signed}, device={dev}{extra}"

    def equivalent(self, timesteps: int) -> nn.Module:
        """Its nominal level quantizer (device variation off): exact."""
        return LevelQuantizer(self)

    def receiver_wiring(self) -> dict[str, Any]:
        """Masked populations (silence other than level 0, or a dead zone): the receiving
        synapses fold the silent value into their bias and see silence as 0."""
        return {"silent_source": self} if self.masked else {}

    def nir_threshold(self) -> float:
        """The top level's value, scale * T."""
        return self.scale * self.window


class LevelQuantizer(nn.Module):
    """The activation of a TTFS / M-TTFS population as a plain function of its input: nearest
    (or floor) level of the nominal level table, signed channels, dead zone around the silent level."""

    def __init__(self, population: TTFSPopulation) -> None:
        super().__init__()
        self.population = copy.deepcopy(population)
        self.population.device = None if population.device is None else population.device.with_variation(None)

    def forward(self, z: Tensor) -> Tensor:
        return self.population(z)
