"""Populations that code one activation site of any model: the activation entering a
weight-bearing operation (a Linear, a convolution, GPT-2's ``Conv1D``, an LM head), coded over
the site's own window of T steps and decoded by the operation's synapses.

Each takes the activation as it is (any shape, a constant current for its window) and returns the
value the synapses integrate (same shape and dtype), and says what one call did
(``activity(args, output)``), how many spikes each neuron sent (``events(x)``: the synaptic events
per connection) and the plain-PyTorch quantizer it equals (``equivalent()``), computed with the
same float operations so that a network and its quantized twin agree bit for bit. Signed sites
use two channels (x and -x: one spike train each). Under autograd the output carries the
straight-through gradient of the activation inside the coded range.

TTFS and M-TTFS sites are :class:`isospike.neurons.ttfs.TTFSPopulation` itself (it takes any
shape); this module adds the rate and sigma-delta sites.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.coding.sigma_delta import settled_level, signed_level
from isospike.neurons.integrate_fire import IFParameters, IFState, if_multistep, if_step
from isospike.neurons.surrogate import straight_through


def _site_row(x: Tensor, per_step: Tensor, channels: int, timesteps: int) -> LayerActivity:
    """A "neuron" row of one call: ``x`` the coded activation ([rows, ...]), spikes per step."""
    rows = x.shape[0] if x.dim() else 1
    neurons = (x[0].numel() if x.dim() else 1) * channels
    return LayerActivity("", "neuron", neurons=neurons, neuron_updates=rows * neurons * timesteps,
                         spikes=int(per_step.sum()), timesteps=timesteps, samples=rows, by_step=per_step.tolist())


class RateSite(nn.Module):
    """Rate coding of one site: IF neurons (reset by subtraction, V(0) = ``v_init``) driven by the
    activation as a constant current for ``timesteps`` steps; a spike is worth ``threshold``, so
    the synapses integrate ``threshold / T * n`` for n spikes (n+ - n- on a signed site).

    Its spike counts come from the step-by-step simulation (the compiled kernel), and its
    equivalent (:class:`RateSiteQuantizer`) runs the same float32 steps in torch: equal counts.
    """

    label = "IF neurons"
    threshold: Tensor  # buffers registered in __init__
    v_init: Tensor

    def __init__(self, threshold: float, timesteps: int, signed: bool, v_init: float = 0.5) -> None:
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        self.register_buffer("v_init", torch.tensor(float(v_init) * float(threshold)))
        self.window = int(timesteps)
        self.signed = bool(signed)

    def _params(self, x: Tensor) -> IFParameters:
        return IFParameters(self.threshold.to(x.dtype), 1.0, "subtract", self.v_init.to(x.dtype))

    def spikes(self, x: Tensor) -> Tensor:
        """0/1 spike events ``[channels, T, *x.shape]`` (bool) of the simulation."""
        xd = x.detach()
        channels = [xd, -xd] if self.signed else [xd]
        p = self._params(xd)
        one = torch.ones((), dtype=xd.dtype)
        return torch.stack([if_multistep(c.unsqueeze(0), p, one, self.window, constant_input=True, binary=True)[0]
                            for c in channels])

    def decode(self, counts: Tensor, x: Tensor) -> Tensor:
        """The value integrated from spike counts (``[channels, *x.shape]``)."""
        n = counts[0] - counts[1] if self.signed else counts[0]
        return n.to(x.dtype) * self.threshold.to(x.dtype) / self.window

    def forward(self, x: Tensor) -> Tensor:
        counts = self.spikes(x).sum(1)
        value = self.decode(counts, x)
        th = self.threshold.to(x.dtype)
        return straight_through(x, value, (x.abs() <= th) if self.signed else (x >= 0) & (x <= th))

    def events(self, x: Tensor) -> Tensor:
        """Spikes each neuron sends over the window (both channels), float64, ``x``'s shape."""
        return self.spikes(x).sum((0, 1)).to(torch.float64)

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        s = self.spikes(args[0])
        per_step = s.sum(0).reshape(self.window, -1).sum(1).to(torch.int64)
        return _site_row(args[0], per_step, 2 if self.signed else 1, self.window)

    def equivalent(self, timesteps: int | None = None) -> nn.Module:
        return RateSiteQuantizer(self)

    def extra_repr(self) -> str:
        return f"threshold={float(self.threshold):.4g}, T={self.window}, signed={self.signed}"


class RateSiteQuantizer(nn.Module):
    """A rate site as a plain function: the IF step (:func:`isospike.neurons.if_step`) run T times
    on the constant current in torch, counts decoded as the site decodes them."""

    def __init__(self, site: RateSite) -> None:
        super().__init__()
        self.site = RateSite(float(site.threshold), site.window, site.signed)
        self.site.v_init.copy_(site.v_init)

    def forward(self, x: Tensor) -> Tensor:
        s = self.site
        p = s._params(x)
        counts = []
        for c in ([x, -x] if s.signed else [x]):
            state, n = IFState(torch.zeros_like(c) + p.v_init), torch.zeros_like(c)
            for _ in range(s.window):
                spikes, state = if_step(c, state, p)
                n = n + spikes
            counts.append(n)
        return s.decode(torch.stack(counts), x)


class SigmaDeltaSite(nn.Module):
    """Sigma-delta coding of one site: the neurons move what their synapses hold toward
    ``threshold * round(x / threshold)`` (ReLU'd first on an unsigned site), at most
    ``max_spikes_per_step`` unit spikes per step (None: at once), for ``timesteps`` steps; the
    synapses integrate ``threshold`` times the spikes held at the end."""

    label = "sigma-delta neurons"

    def __init__(self, threshold: float, timesteps: int, signed: bool, max_spikes_per_step: int | None = None) -> None:
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if max_spikes_per_step is not None and max_spikes_per_step < 1:
            raise ValueError(f"max_spikes_per_step must be >= 1 or None, got {max_spikes_per_step}")
        self.threshold = float(threshold)
        self.window = int(timesteps)
        self.signed = bool(signed)
        self.max_spikes_per_step = max_spikes_per_step

    def held(self, x: Tensor) -> Tensor:
        """Spikes held after the window (signed integer counts as floats): the target level,
        reached at a pace of at most ``max_spikes_per_step`` per step."""
        target = (signed_level if self.signed else settled_level)(x.detach(), self.threshold)
        if self.max_spikes_per_step is None:
            return target
        reach = float(self.max_spikes_per_step * self.window)
        return target.clamp(-reach, reach)

    def forward(self, x: Tensor) -> Tensor:
        value = self.threshold * self.held(x)
        return straight_through(x, value.to(x.dtype), None if self.signed else x >= 0)

    def events(self, x: Tensor) -> Tensor:
        return self.held(x).abs().to(torch.float64)

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        x = args[0]
        target = self.held(x)
        held = torch.zeros_like(target)
        per_step = []
        for _ in range(self.window):
            n = target - held
            if self.max_spikes_per_step is not None:
                n = n.clamp(-self.max_spikes_per_step, self.max_spikes_per_step)
            held = held + n
            per_step.append(torch.nan_to_num(n.abs(), nan=0.0, posinf=0.0).sum())
        return _site_row(x, torch.stack(per_step).to(torch.int64), 1, self.window)

    def equivalent(self, timesteps: int | None = None) -> nn.Module:
        return SigmaDeltaSiteQuantizer(self)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:.4g}, T={self.window}, signed={self.signed}, " \
               f"max_spikes_per_step={self.max_spikes_per_step}"


class SigmaDeltaSiteQuantizer(nn.Module):
    """A sigma-delta site as a plain function: ``threshold`` times the level it holds."""

    def __init__(self, site: SigmaDeltaSite) -> None:
        super().__init__()
        self.site = SigmaDeltaSite(site.threshold, site.window, site.signed, site.max_spikes_per_step)

    def forward(self, x: Tensor) -> Tensor:
        return (self.site.threshold * self.site.held(x)).to(x.dtype)




class ChannelScaled(nn.Module):
    """A site population run on its activation divided channel by channel: each input channel c
    (the entries that reach the same weights) spans ``scale[c]``, the population codes x / scale
    (a span of 1 for every channel) and its synapses decode scale x what it sends -- per-neuron
    thresholds, as a neuromorphic core sets them, folding the channel's scale into its weights.
    LLM activations put most of their range in a few channels; one scale per site would spend the
    levels on them.

    Split channels (``excess`` given): the population codes x clipped to [-scale, scale] and a
    second population, of the same coding, codes what lies beyond, (x - clip(x)) / excess_scale;
    the synapses decode ``scale * first + excess_scale * second``. The second population is silent
    unless |x| exceeds ``scale[c]``: the rare huge values of a channel (LLMs' massive activations)
    keep their size without coarsening every other value of the channel.

    scale, excess_scale: float32 ``[channels]``, > 0. axis: the channel axis of the activation."""

    scale: Tensor  # buffers registered in __init__
    excess_scale: Tensor | None
    population: Any  # a site population (TTFSPopulation, RateSite, SigmaDeltaSite) or its quantizer
    excess: Any  # None, or a second population of the same kind for the values beyond ``scale``

    def __init__(self, population: nn.Module, scale: Tensor, axis: int, excess: nn.Module | None = None,
                 excess_scale: Tensor | None = None) -> None:
        super().__init__()
        if (excess is None) != (excess_scale is None):
            raise ValueError("a split channel needs both its excess population and its excess scales, or neither")
        self.population = population
        self.excess = excess
        self.register_buffer("scale", scale.detach().to(torch.float32).clone())
        self.register_buffer("excess_scale", None if excess_scale is None
                             else excess_scale.detach().to(torch.float32).clone())
        self.axis = int(axis)

    @property
    def label(self) -> str:
        return str(getattr(self.population, "label", "neurons"))

    @property
    def window(self) -> int:
        return int(self.population.window)

    @property
    def device(self) -> object:
        """The synapse device of the population (None: digital reads)."""
        return getattr(self.population, "device", None)

    def _shaped(self, scale: Tensor, x: Tensor) -> Tensor:
        axis = self.axis % x.dim()
        return scale.to(x.dtype).reshape([-1 if d == axis else 1 for d in range(x.dim())])

    def _parts(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """What each population codes and the scale decoding it, shaped for ``x``: x / scale
        (x clipped to the span when split), and the excess (x - clip(x)) / excess_scale (None, None
        when not split)."""
        s = self._shaped(self.scale, x)
        if self.excess_scale is None:
            return x / s, s, None, None
        inner = x.clamp(-s, s)
        c = self._shaped(self.excess_scale, x)
        return inner / s, s, (x - inner) / c, c

    def forward(self, x: Tensor) -> Tensor:
        first, s, beyond, c = self._parts(x)
        out = self.population(first) * s
        return out if beyond is None else out + self.excess(beyond) * c

    def events(self, x: Tensor) -> Tensor:
        """Spikes per neuron, ``x``'s shape; split: both populations' spikes reach the channel's synapses."""
        first, _, beyond, _ = self._parts(x.detach())
        out = self.population.events(first)
        return out if beyond is None else out + self.excess.events(beyond)

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        first, s, beyond, _ = self._parts(args[0].detach())
        if beyond is None:
            return self.population.activity((first,), output.detach() / s)
        with torch.no_grad():  # split: each population's own output
            row = self.population.activity((first,), self.population(first))
            return row.alongside(self.excess.activity((beyond,), self.excess(beyond)))

    def equivalent(self, timesteps: int | None = None) -> nn.Module:
        excess = None if self.excess is None else self.excess.equivalent(timesteps)
        return ChannelScaled(self.population.equivalent(timesteps), self.scale, self.axis, excess, self.excess_scale)

    def extra_repr(self) -> str:
        return f"channels={self.scale.numel()}, axis={self.axis}" + (", split" if self.excess is not None else "")


__all__ = ["ChannelScaled", "RateSite", "RateSiteQuantizer", "SigmaDeltaSite", "SigmaDeltaSiteQuantizer"]
