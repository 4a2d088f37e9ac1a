"""TTFS coding with decaying synapse devices (Otters / Otters++).

Each activation becomes a TTFS population: during its window of T steps a neuron compares its
membrane V (the synaptic integration of the previous layer's device reads) with a staircase
threshold and fires at the first step k where V >= theta_k, i.e. level q = T - k (silent: q = 0).
Its spike is read by the next layer's synapses at the slot time t_k: the device returns O(t_k)
(with its run-to-run variation, if any), scaled by scale * T -- exactly the QNN level for the
nominal device. So each converted layer computes the QNN layer of
:class:`isospike.train.ttfs.TTFSQuant`; tests check the outputs are identical.

Trained QNN activations (``TTFSQuant``) keep their step, rounding and device; plain ReLUs are
converted post hoc with step = percentile / T from calibration data. The first layer receives
the analog input (a MAC layer); BatchNorm is folded.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from isospike.coding.mttfs import Silence, apply_dead_zone, check_silence, lowest_level, spike_code
from isospike.coding.ttfs import Rounding
from isospike.conversion.assemble import assemble_time_folded, synapses_fed_by
from isospike.conversion.calibration import activation_spans, first_batch
from isospike.conversion.graph import fold_batchnorm, propagate_shapes, relu_functions_to_modules, trace
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.rate import check_rate_graph, has_trained_threshold
from isospike.conversion.timefold import SpikingPopulation
from isospike.devices import DeviceVariation, OptoelectronicSynapse, resolve_synapse
from isospike.devices.arguments import _UNSET

CODING = "ttfs"


class TTFSPopulation(SpikingPopulation):
    """A TTFS neuron population (one pass: the window is resolved inside).

    Input: membrane potentials V (any shape, float32). Output: what the next layer's synapses
    read for each neuron -- ``scale * T * O(t_k)`` at its spike slot k (0 when silent), signed
    for two-channel layers. Records spikes, neuron updates (neurons x T) and spikes per slot.

    ``silent_level`` is the level sent as silence (0: plain TTFS), ``dead_zone`` the levels around
    it also sent as silence, and ``silence`` the rule that chose it (:data:`isospike.coding.mttfs.
    Silence`: "zero", "lowest" -- the Matterhorn paper's TTFS baseline, -T on signed layers -- or
    "mode" for M-TTFS; default: inferred from the level). A "zero" or "lowest" rule must match
    ``silent_level`` (checked, also when a saved network is loaded).
    """

    silent_level: Tensor  # buffers registered in __init__
    slot_reads: Tensor

    def __init__(self, timesteps: int, scale: float, rounding: Rounding = "round", signed: bool = False,
                 device: OptoelectronicSynapse | None = None, silent_level: int | Tensor = 0, dead_zone: int = 0,
                 silence: Silence | None = None) -> None:
        super().__init__()
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
        self.window = int(timesteps)
        self.scale = float(scale)
        self.rounding: Rounding = rounding
        self.signed = signed
        self.device = device
        reads = device.slot_reads(timesteps).float() if device is not None else \
            (timesteps - torch.arange(timesteps + 1, dtype=torch.float32)) / timesteps
        self.register_buffer("slot_reads", reads)
        self.generator: torch.Generator | None = None
        self.last_slots: Tensor | None = None
        self.reset_counts()

    def reset(self) -> None:
        self.last_slots = None

    def reset_counts(self) -> None:
        self.spikes = 0
        self.neuron_updates = 0
        self.spikes_by_step = [0] * self.window
        self.samples = 0
        self.neurons_per_sample = 0

    def thresholds(self) -> Tensor:
        """theta_k for k = 0..T-1 (decreasing): the staircase the membrane is compared with."""
        lv = self.scale * self.window * self.slot_reads  # level of slot k
        if self.rounding == "round":
            return (lv[:-1] + lv[1:]) / 2
        return lv[:-1]

    @property
    def masked(self) -> bool:
        """True when silence stands for a level other than 0 (M-TTFS, or the lowest level of a signed
        layer under ``silence="lowest"``) or a dead zone is on: receivers fold the silent value."""
        return bool((self.silent_level != 0).any()) or self.dead_zone > 0

    def silent_values(self) -> Tensor:
        """Decoded value of the silent level (per channel when the silent level is a tensor)."""
        m = self.silent_level
        return (m.sign() * self.scale * self.window * self.slot_reads[self.window - m.abs()]).to(torch.float32)

    def forward(self, v: Tensor) -> Tensor:
        T = self.window
        self.sample_shape = tuple(v.shape[1:])  # what a receiving synapse's folded offset is shaped like
        mag = v.abs() if self.signed else v
        th = self.thresholds()
        # first crossing: the first k (earliest step) with V >= theta_k; T when it never fires
        crossed = mag.unsqueeze(-1) >= th  # [..., T]
        slot = torch.where(crossed.any(-1), crossed.to(torch.int8).argmax(-1), torch.full_like(mag, T, dtype=torch.int64))
        if self.masked:
            return self._masked(v, slot)
        reads = self.slot_reads
        if self.device is not None and self.device.variation is not None:
            var: DeviceVariation = self.device.variation
            shape = slot.shape if var.granularity == "read" else slot.shape[1:] if var.granularity == "device" else ()
            factors = var.factors(torch.Size(shape) if shape else torch.Size([1]), self.generator)
            value = self.scale * T * reads[slot] * factors.to(reads.dtype)
        else:
            value = self.scale * T * reads[slot]
        value = torch.where(slot < T, value, torch.zeros_like(value))
        if self.signed:
            value = torch.sign(v) * value
        self.last_slots = slot
        fired = slot < T
        self.spikes += int(fired.sum())
        self.neuron_updates += v.numel() * T
        counts = torch.bincount(slot.flatten(), minlength=T + 1)[:T].tolist()
        self.spikes_by_step = [a + int(b) for a, b in zip(self.spikes_by_step, counts)]
        self.samples += v.shape[0] if v.dim() else 1
        self.neurons_per_sample = math.prod(v.shape[1:]) if v.dim() else 1
        return value.to(v.dtype)

    def _masked(self, v: Tensor, slot: Tensor) -> Tensor:
        """M-TTFS: the TTFS level, dead zone applied, sent with silence for the silent level."""
        T = self.window
        q = T - slot
        if self.signed:
            q = torch.where(v < 0, -q, q)
        q = apply_dead_zone(q, self.silent_level, self.dead_zone)
        value = self.scale * T * self.slot_reads[T - q.abs()]
        if self.signed:
            value = torch.where(q < 0, -value, value)
        code = spike_code(q, self.silent_level)
        fired = code != 0
        self.last_slots = torch.where(fired, T - code.abs(), torch.full_like(code, T))
        self.spikes += int(fired.sum())
        self.neuron_updates += v.numel() * T
        counts = torch.bincount(self.last_slots.flatten(), minlength=T + 1)[:T].tolist()
        self.spikes_by_step = [a + int(b) for a, b in zip(self.spikes_by_step, counts)]
        self.samples += v.shape[0] if v.dim() else 1
        self.neurons_per_sample = math.prod(v.shape[1:]) if v.dim() else 1
        return value.to(v.dtype)

    def extra_repr(self) -> str:
        dev = self.device.name if self.device is not None else "ideal"
        extra = f", silence={self.silence}, silent_level={self.silent_level.tolist()}, dead_zone={self.dead_zone}" \
            if self.masked else ""
        return f"T={self.window}, scale={self.scale:.4g}, rounding={self.rounding}, signed={self.signed}, device={dev}{extra}"


def convert_ttfs(
    model: nn.Module,
    *,
    timesteps: int = 15,
    calibration: Any = None,
    synapse: OptoelectronicSynapse | None = _UNSET,
    percentile: float = 99.9,
    rounding: Rounding = "round",
    fold_bn: bool = True,
    calibration_batch_size: int = 256,
    device: Any = _UNSET,
    silence: Literal["zero", "lowest"] = "zero",
) -> SpikingNetwork:
    """Convert a QNN (TTFSQuant activations) or a ReLU ANN to a TTFS SNN (see module docstring).

    Args:
        timesteps: window T for ReLUs converted post hoc (TTFSQuant layers keep their own).
        synapse: synapse model for all layers, e.g. ``OptoelectronicSynapse.in2o3()`` (default: each
            TTFSQuant's own, else ideal reads). ``device=`` is its deprecated name.
        percentile: post-hoc step = percentile of the ReLU's activations / T.
        rounding: post-hoc rounding ("round" or "floor").
        silence: which level a neuron sends as silence (no spike, no synaptic event).
            ``"zero"`` (default): isospike's signed TTFS, sign-and-magnitude channels with level 0
            silent. ``"lowest"``: the TTFS baseline of the Matterhorn paper -- levels offset to be
            unsigned (q + T), so the lowest level (-T on a signed layer) is silent and 0 fires; the
            receivers fold the silent value into their bias (as for M-TTFS), so outputs equal the
            QNN's up to float summation order. Unsigned (ReLU) layers are the same under both.
            Signed layers then need digital reads (``synapse=None``). The most frequent level is
            ``coding="mttfs"``.
    """
    rule: Silence = check_silence(silence, ("zero", "lowest"), hint=" (the most frequent level: coding='mttfs')")
    device = resolve_synapse(synapse, device, "isospike.convert(coding='ttfs')")
    gm = trace(model, CODING)
    relu_functions_to_modules(gm)
    folded = fold_batchnorm(gm) if fold_bn else []
    if calibration is not None:
        propagate_shapes(gm, first_batch(calibration))
    activations = check_rate_graph(gm, (nn.ReLU,), ttfs=True, coding=CODING)
    modules = {p: gm.get_submodule(p) for p in activations}
    quantized = {p: m for p, m in modules.items() if hasattr(type(m), "ttfs_timesteps")}
    # activations trained with a clip threshold (NoisyQCFS) span [0, lambda]: step = lambda / T
    clipped = {p: float(m.spike_threshold) for p, m in modules.items() if p not in quantized and has_trained_threshold(m)}
    relus = [p for p in activations if p not in quantized and p not in clipped]
    if relus and calibration is None:
        raise ValueError("post-hoc TTFS conversion of ReLUs needs calibration data for the steps: pass calibration=...")
    specs: dict[str, dict] = {}
    if relus:
        tops, _ = activation_spans(gm, relus, calibration, percentile, CODING, calibration_batch_size, max_at_100=False)
        for p, top in tops.items():
            specs[p] = dict(timesteps=timesteps, scale=top / timesteps, rounding=rounding, signed=False, device=device)
    for p, lam in clipped.items():
        specs[p] = dict(timesteps=timesteps, scale=lam / timesteps, rounding=rounding, signed=False, device=device)
    for p, m in quantized.items():
        step = m.scale
        assert isinstance(step, Tensor)  # a TTFS-quantized activation (TTFSQuant) learns its step as a parameter
        specs[p] = dict(timesteps=m.timesteps, scale=float(step.detach().abs()), rounding=m.rounding,
                        signed=m.signed, device=device if device is not None else m.device)
    for spec in specs.values():
        if rule == "lowest":
            if spec["signed"] and spec["device"] is not None:
                raise ValueError("silence='lowest' decodes the offset levels of signed layers with a digital level "
                                 "table: convert with synapse=None")
            spec.update(silent_level=lowest_level(spec["timesteps"], spec["signed"]), silence=rule)
    populations = {p: (lambda static, spec=spec: TTFSPopulation(**spec)) for p, spec in specs.items()}
    assemble_time_folded(gm, populations, reads_device=any(s["device"] is not None for s in specs.values()))
    if rule == "lowest":  # receivers hold the silent value in their bias (as for M-TTFS)
        pops = {n for n, m in gm.named_modules() if isinstance(m, TTFSPopulation)}
        for syn, src in synapses_fed_by(gm, pops).items():
            object.__setattr__(gm.get_submodule(syn), "silent_source", gm.get_submodule(src))
    windows = {s["timesteps"] for s in specs.values()} or {timesteps}
    specs = {p: specs[p] for p in activations}  # graph order
    info = {"steps": {p: s["scale"] for p, s in specs.items()}, "windows": sorted(windows),
            "trained_layers": sorted(quantized), "post_hoc_layers": relus, "folded_batchnorm": folded,
            "device": None if device is None else device.name}
    if rule != "zero":
        info["silence"] = rule
    return SpikingNetwork(gm, max(windows), CODING, info, fold_time=False)
