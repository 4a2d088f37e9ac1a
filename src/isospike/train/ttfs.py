"""Quantized activations equivalent to TTFS layers (Otters / Otters++), and the hybrid training
that runs the device-faithful spiking forward with QNN straight-through gradients.

A TTFS layer with window T, step ``scale`` and an optoelectronic synapse O equals a QNN layer
whose activation takes the levels L_q = scale * T * O(t_{T-q}), q = 0..T (signed layers: two
channels, -L_q .. L_q), chosen by rounding to the nearest level (or floor). With the nominal
device these are the uniform levels scale * q. :class:`TTFSQuant` is that activation:

* forward in eval mode: the level (what the spiking layer produces);
* forward in training with a noisy device, or whenever ``spiking`` is on: the device-faithful
  spiking layer (:class:`~isospike.conversion.ttfs.TTFSPopulation`: staircase first crossing,
  device read at the spike slot with run-to-run variation sampled, spike counting), while the
  gradient is the QNN's straight-through one (LSQ-style for the scale):
  y = q + (snn - q).detach().
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.coding.mttfs import Silence
from isospike.coding.ttfs import Rounding, level_of, level_table
from isospike.devices import OptoelectronicSynapse, resolve_synapse
from isospike.devices.arguments import _UNSET

if TYPE_CHECKING:
    from isospike.conversion.ttfs import TTFSPopulation


def round_ste(x: Tensor) -> Tensor:
    return x + (torch.floor(x + 0.5) - x).detach()


def floor_ste(x: Tensor) -> Tensor:
    return x + (torch.floor(x) - x).detach()


class TTFSQuant(nn.Module):
    """QNN activation of a TTFS layer. Input/output: any shape, float32.

    Args:
        timesteps: window T (levels 0..T; 2^n - 1 for n-bit activations).
        scale: initial step (learnable; LSQ gradient).
        signed: two spike channels, levels -T..T (for signed operands).
        rounding: "round" (threshold half a level below each level) or "floor".
        synapse: optoelectronic synapse whose reads give the levels (None: ideal uniform levels);
            ``device=`` is its deprecated name.
        learn_scale: make the step a trainable parameter.
    """

    slot_reads: Tensor  # buffer (registered in __init__)
    population: TTFSPopulation | None  # plain attribute, outside the module tree (set in __init__)

    def __init__(self, timesteps: int = 15, scale: float = 0.1, signed: bool = False, rounding: Rounding = "round",
                 synapse: OptoelectronicSynapse | None = _UNSET, learn_scale: bool = True, device: Any = _UNSET) -> None:
        super().__init__()
        device = resolve_synapse(synapse, device, "TTFSQuant")
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        if rounding not in ("round", "floor"):
            raise ValueError(f"rounding must be 'round' or 'floor', got {rounding!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.timesteps = int(timesteps)
        self.signed = signed
        self.rounding: Rounding = rounding
        self.device = device
        s = torch.tensor(float(scale))
        self.scale = nn.Parameter(s) if learn_scale else nn.Parameter(s, requires_grad=False)
        reads = device.slot_reads(timesteps).float() if device is not None else \
            (timesteps - torch.arange(timesteps + 1, dtype=torch.float32)) / timesteps
        self.register_buffer("slot_reads", reads)  # O(t_k), k = 0..T (slot T: silence)
        self.generator: torch.Generator | None = None
        self.spiking = False  # run the spiking population (counts spikes) instead of the quantizer
        # masked TTFS (isospike.train.ttfs.mask_ttfs): level sent as silence, dead zone around it
        self.silent_level = 0
        self.dead_zone = 0
        # the equivalent population, built on use (kept out of the module tree and the state dict)
        object.__setattr__(self, "population", None)

    @property
    def ttfs_timesteps(self) -> int:
        """Marks the module as a TTFS layer for conversion (its window T)."""
        return self.timesteps

    def level_values(self, reads: Tensor | None = None) -> Tensor:
        """L_q for q = 0..T (float32 [T + 1]): scale * T * O(t_{T - q}); L_0 = 0."""
        return level_table(self.scale.detach().abs(), self.slot_reads if reads is None else reads)

    def quantize_level(self, x: Tensor) -> Tensor:
        """Integer level q (int64): nearest (or floor) level of |x| on the nominal level set."""
        mag = x.abs() if self.signed else x
        return level_of(mag.detach(), self.level_values(), self.rounding)

    @property
    def masked(self) -> bool:
        return self.silent_level != 0 or self.dead_zone > 0

    def signed_level(self, x: Tensor) -> Tensor:
        """Signed integer level (int64) of x, with the dead zone applied."""
        from isospike.coding.mttfs import apply_dead_zone

        q = self.quantize_level(x)
        if self.signed:
            q = torch.where(x.detach() < 0, -q, q)
        return apply_dead_zone(q, self.silent_level, self.dead_zone)

    def silent_value(self) -> float:
        """Value that silence stands for (0 for plain TTFS)."""
        m = self.silent_level
        return float(self.level_values()[abs(m)]) * (1 if m >= 0 else -1)

    def forward(self, x: Tensor) -> Tensor:
        T = self.timesteps
        s = self.scale.abs() + 1e-12
        lo = -T if self.signed else 0
        u = torch.clamp(x / s, lo, T)
        ste = s * (round_ste(u) if self.rounding == "round" else floor_ste(u))  # QNN path (gradients)
        noisy = self.training and self.device is not None and self.device.variation is not None
        if self.spiking or noisy:
            level = self.spiking_population()(x.detach())
        elif self.masked:
            q = self.signed_level(x)
            level = torch.sign(q) * self.level_values()[q.abs()]
        else:
            q = self.quantize_level(x)
            level = self.level_values()[q]
            level = torch.sign(x.detach()) * level if self.signed else level
        return ste + (level - ste).detach()

    def activity(self, args: tuple, output: Tensor) -> LayerActivity | None:
        """What one call did as a spiking population (for :func:`isospike.counting`; None when it
        ran as the QNN, ``spiking`` off)."""
        if not self.spiking:
            return None
        return self.spiking_population().activity((args[0].detach(),), output)

    def spiking_population(self):
        """The TTFS population this layer is equivalent to (current step)."""
        from isospike.conversion.ttfs import TTFSPopulation

        scale = float(self.scale.detach().abs())
        p = self.population
        if p is None or p.scale != scale or int(p.silent_level) != self.silent_level or p.dead_zone != self.dead_zone:
            object.__setattr__(self, "population", TTFSPopulation(self.timesteps, scale, self.rounding, self.signed,
                                                                  self.device, self.silent_level, self.dead_zone))
        self.population.generator = self.generator
        return self.population

    def extra_repr(self) -> str:
        dev = self.device.name if self.device is not None else "ideal"
        return f"T={self.timesteps}, scale={float(self.scale):.4g}, signed={self.signed}, rounding={self.rounding}, device={dev}"


def qnn_from(model: nn.Module, timesteps: int = 15, calibration: Tensor | None = None,
             synapse: OptoelectronicSynapse | None = _UNSET, rounding: Rounding = "round", percentile: float = 99.9,
             device: Any = _UNSET) -> nn.Module:
    """The QNN equivalent to a TTFS network: a copy of ``model`` with every ``nn.ReLU`` replaced
    by a :class:`TTFSQuant` (unsigned, window ``timesteps``). With ``calibration`` inputs each
    step starts at the ``percentile``-th percentile of its ReLU's activations / T; max pooling
    becomes average pooling."""
    from isospike.train.nq import relu_percentiles

    device = resolve_synapse(synapse, device, "qnn_from")
    scales = relu_percentiles(model, calibration, percentile) if calibration is not None else None
    model = copy.deepcopy(model)
    paths = [p for p, m in model.named_modules() if isinstance(m, nn.ReLU)]
    if not paths:
        raise ValueError("the model has no nn.ReLU modules to replace (functional ReLUs cannot be swapped)")
    for path in paths:
        s = scales[path] / timesteps if scales is not None else 1.0 / timesteps
        model.set_submodule(path, TTFSQuant(timesteps, s, rounding=rounding, synapse=device))
    for path, m in list(model.named_modules()):
        if isinstance(m, nn.MaxPool2d):
            model.set_submodule(path, nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode))
    return model


def ttfs_layers(model: nn.Module) -> dict[str, TTFSQuant]:
    return {p: m for p, m in model.named_modules() if isinstance(m, TTFSQuant)}


@torch.no_grad()
def mask_ttfs(model: nn.Module, run: Callable[[], object] | None = None, dead_zone: int = 0,
              dead_zone_layers: Callable[[str], bool] | None = None, silence: Silence = "mode") -> dict[str, int]:
    """Choose the level each :class:`TTFSQuant` of ``model`` sends as silence: masked TTFS (M-TTFS,
    Matterhorn) by default.

    ``silence`` (see :mod:`isospike.coding.mttfs`):

    * ``"mode"`` (default, M-TTFS): ``run()`` feeds calibration data through ``model``; each layer's
      most frequent level on that data (before any dead zone) becomes its silent level;
    * ``"lowest"``: the Matterhorn paper's TTFS baseline -- levels offset to be unsigned, so the
      lowest level (-T on signed layers, 0 on unsigned ones) is silent; ``run`` is not needed;
    * ``"zero"``: isospike's signed TTFS (level 0 silent), i.e. masking undone.

    ``dead_zone`` k (lossy) also sends every level within k of the silent one as silence, in the
    layers whose path ``dead_zone_layers(path)`` accepts (default: all). Returns {layer path:
    silent level}. Without a dead zone the choice changes no value, only which neurons spike."""
    from isospike.coding.mttfs import check_silence, lowest_level, most_frequent_level

    silence = check_silence(silence)
    if int(dead_zone) != dead_zone or dead_zone < 0:
        raise ValueError(f"dead_zone must be an integer >= 0 (levels around the silent one), got {dead_zone!r}")
    if silence == "mode" and run is None:
        raise ValueError("silence='mode' measures each layer's most frequent level: pass run, a function feeding "
                         "calibration data through the model")
    layers = ttfs_layers(model)
    if not layers:
        raise ValueError("the model has no TTFSQuant layers to mask (see isospike.train.qnn_from)")
    for m in layers.values():
        if m.device is not None and (silence != "zero" or dead_zone):
            raise ValueError("masked TTFS decodes spikes with a digital level table; remove the optoelectronic device "
                             "(m.device = None) first")
        m.silent_level, m.dead_zone = 0, 0

    def zone(name: str) -> int:
        return int(dead_zone) if dead_zone_layers is None or dead_zone_layers(name) else 0

    if silence != "mode":
        for name, m in layers.items():
            m.silent_level = lowest_level(m.timesteps, m.signed) if silence == "lowest" else 0
            m.dead_zone = zone(name)
        return {name: m.silent_level for name, m in layers.items()}
    assert run is not None  # checked above
    counts: dict[str, Tensor] = {}

    def hook(name: str):
        def record(mod: TTFSQuant, inputs, _out) -> None:
            q = mod.signed_level(inputs[0]).flatten() + mod.timesteps
            h = torch.bincount(q, minlength=2 * mod.timesteps + 1)
            counts[name] = counts[name] + h if name in counts else h
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        run()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    silent = {}
    for name, m in layers.items():
        if name not in counts:
            continue
        levels = torch.arange(-m.timesteps, m.timesteps + 1).repeat_interleave(counts[name])
        m.silent_level = int(most_frequent_level(levels))
        m.dead_zone = zone(name)
        silent[name] = m.silent_level
    return silent
