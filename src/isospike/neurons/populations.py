"""Spiking populations as a converted network holds them, and the rate coding's IF population.

A population replaces one activation of the ANN. Besides simulating, each population type says
what it provably computes, so the library's generic walkers need no per-coding branches:

* ``equivalent(timesteps)``: the plain-PyTorch module it equals (:func:`isospike.equivalent`);
* ``certify(...)``: its guarantee checked on one run (:func:`isospike.verify`);
* ``receiver_wiring()``: what the synapses it feeds must know of it (the value of a sigma-delta
  spike, the silent value of masked TTFS), given to them when the graph is assembled.

A population is a pure time loop: ``population(x, timesteps)`` runs the steps from the initial
state and returns what it sends, keeping no state and no counters between calls; what a call did
(spikes per step, neuron updates) is computed from its input and output by ``activity(args,
output)``, which :func:`isospike.counting` calls only while it observes.

Time is folded into the batch dimension: a tensor that varies over time has shape
``[T * batch, ...]`` (step-major); one that depends only on the input stays ``[batch, ...]``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.guarantees import BOUNDED_ERROR, MEASURED_ONLY, QNN_EQUIVALENT, LayerCertificate, layer_check
from isospike.neurons.integrate_fire import (
    STEP_COUNTS,
    IFNeuron,
    IFParameters,
    if_multistep,
    if_step,
    initial_state,
    spikes_per_step,
    with_step_counts,
)


class TimeFolded(nn.Module):
    """Base of the modules of a converted graph that take the number of time steps of the current
    run as their second argument: ``module(x, timesteps)`` (the network passes it in; nothing is
    stored)."""

    def forward(self, x: Tensor, timesteps: int) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class SpikingPopulation(TimeFolded):
    """Base of the neuron populations placed in a converted graph: ``forward(x, timesteps)`` is
    a pure time loop (see the module docstring) and ``activity(args, output)`` says what one call
    did, as a :class:`~isospike.activity.LayerActivity` row of kind "neuron" whose ``samples``
    are the rows of the call's batch."""

    label: ClassVar[str] = "neurons"  # what reports call it

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:  # pragma: no cover - interface
        raise NotImplementedError

    def equivalent(self, timesteps: int) -> nn.Module:
        """The plain-PyTorch activation this population equals for a network of ``timesteps`` steps."""
        raise NotImplementedError(f"{type(self).__name__} does not state the function it computes; "
                                  "implement equivalent() to use isospike.equivalent / verify")

    def certify(self, name: str, current: Tensor, output: Tensor, expected: Tensor, timesteps: int,
                fold_time: bool, tolerance: float) -> LayerCertificate:
        """This layer's guarantee checked on one run: ``current`` / ``output`` are what the
        population received and sent (time-folded ``[T * batch, ...]`` when ``fold_time``),
        ``expected`` its equivalent's output on the same data. Default: the output once settled
        (the last step) equals the equivalent's exactly ("qnn-equivalent")."""
        out = output.reshape(timesteps, -1, *output.shape[1:])[-1] if fold_time else output
        return layer_check(name, QNN_EQUIVALENT, (out - expected).abs(), tolerance)

    def receiver_wiring(self) -> dict[str, Any]:
        """Keyword arguments for the :class:`~isospike.conversion.timefold.CountingSynapse` of
        each synaptic layer this population feeds (none by default)."""
        return {}

    def nir_threshold(self) -> float:
        """The threshold of the ``nir.IF`` node a standard NIR reader runs in its place (a
        population without a NIR primitive is exported as one; its metadata holds the real one)."""
        return 1.0


def folded_activity(output: Tensor, timesteps: int, per_step: Tensor | None = None) -> LayerActivity:
    """The "neuron" row of a time-folded population's call: ``output`` ``[T * batch, ...]`` (a
    nonzero entry is a spike unless ``per_step``, int64 ``[T]``, gives the spikes per step)."""
    T = timesteps
    rows = output.shape[0] // T if output.dim() and T else 0
    neurons = math.prod(output.shape[1:]) if output.dim() else 1
    counts = spikes_per_step(output, T) if per_step is None else per_step
    return LayerActivity("", "neuron", neurons=neurons, neuron_updates=rows * neurons * T, spikes=int(counts.sum()),
                         timesteps=T, samples=rows, by_step=counts.tolist())


class TimeFoldedNeuron(SpikingPopulation):
    """Rate coding's population: a spiking IF/LIF neuron run on a time-folded tensor.

    ``static_input`` marks an input that does not change over time (``[batch, ...]``): the
    neuron then receives the same current at each of the T steps. Output: ``[T * batch, ...]``.
    """

    label = "IF neurons"

    def __init__(self, neuron: IFNeuron, static_input: bool) -> None:
        super().__init__()
        self.neuron = neuron  # its parameters (threshold, v_init, spike_value, leak, reset)
        self.static_input = static_input

    def run(self, x: Tensor, timesteps: int) -> tuple[Tensor, Tensor]:
        """The spikes ``[T * batch, ...]`` and the final membrane ``[batch, ...]`` for input ``x``."""
        n, T = self.neuron, timesteps
        x_steps = x.unsqueeze(0) if self.static_input else x.reshape(T, x.shape[0] // T, *x.shape[1:])
        out, v = if_multistep(x_steps, n.params, n.spike_value, T, constant_input=self.static_input)
        folded = out.reshape(-1, *out.shape[2:])
        known = getattr(out, STEP_COUNTS, None)
        return (folded if known is None else with_step_counts(folded, known)), v

    def forward(self, x: Tensor, timesteps: int) -> Tensor:
        return self.run(x, timesteps)[0]

    def activity(self, args: tuple, output: Tensor) -> LayerActivity:
        return folded_activity(output, args[1])

    def equivalent(self, timesteps: int) -> nn.Module:
        n = self.neuron
        return RateQuantizer(n.threshold, n.v_init, timesteps, n.spike_value, n.reset_mode, n.leak)

    def certify(self, name: str, current: Tensor, output: Tensor, expected: Tensor, timesteps: int,
                fold_time: bool, tolerance: float) -> LayerCertificate:
        """Constant input (the first layer): the rate equals the quantizer's ("qnn-equivalent").
        Spike-fed, reset by subtraction, no leak: |rate - clip(mean current, 0, theta)| <=
        max(v_init, theta - v_init) / T for every neuron ("bounded-error"). Reset to zero or a
        leak loses the residual at each spike: nothing is claimed."""
        T, n = timesteps, self.neuron
        rate = output.reshape(T, -1, *output.shape[1:]).mean(0)
        if self.static_input:
            return layer_check(name, QNN_EQUIVALENT, (rate - expected).abs(), tolerance + 1e-6 * float(n.threshold.max()))
        if n.reset_mode != "subtract" or n.leak != 1.0:
            return layer_check(name, MEASURED_ONLY, torch.zeros(0), math.inf)
        mean_current = current.reshape(T, -1, *current.shape[1:]).mean(0)
        th, v0 = n.threshold, n.v_init
        value = rate * (th / n.spike_value)  # in input units, whatever a spike is worth
        diff = (value - torch.minimum(mean_current.clamp_min(0), th)).abs()
        bound = torch.maximum(v0, th - v0) / T
        row = layer_check(name, BOUNDED_ERROR, diff - bound, tolerance + 1e-6 * float(th.max()))
        row.max_abs_diff = float(diff.max()) if diff.numel() else 0.0
        row.bound = float(bound.max())
        return row

    def extra_repr(self) -> str:
        return f"static_input={self.static_input}"


class RateQuantizer(nn.Module):
    """The spike-count rate of an IF/LIF neuron driven by a constant current z for T steps, each
    spike worth s (``spike_value``: theta after conversion; 1 where the next layer's weights carry
    theta, as in networks read back from NIR), under the neuron's own reset rule and leak.

    Reset by subtraction without leak (what conversion builds) has the closed form
    ``s / T * clip(floor((T z + v_init) / theta), 0, T)``; any other neuron (reset to zero, a leak,
    as foreign NIR files hold) is its own step function run T times on the constant current."""

    threshold: Tensor  # buffers registered in __init__
    v_init: Tensor
    spike_value: Tensor

    def __init__(self, threshold: Tensor, v_init: Tensor, timesteps: int, spike_value: Tensor | None = None,
                 reset: str = "subtract", leak: float = 1.0) -> None:
        super().__init__()
        if reset not in ("subtract", "zero"):
            raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
        self.register_buffer("threshold", threshold.detach().clone())
        self.register_buffer("v_init", v_init.detach().clone())
        value = threshold if spike_value is None else spike_value
        self.register_buffer("spike_value", torch.as_tensor(value).detach().clone())
        self.timesteps = int(timesteps)
        self.reset = reset
        self.leak = float(leak)

    def forward(self, z: Tensor) -> Tensor:
        T, th = self.timesteps, self.threshold
        if self.reset == "subtract" and self.leak == 1.0:
            n = torch.floor((T * z + self.v_init) / th).clamp(0, T)
        else:
            p = IFParameters(th, self.leak, self.reset, self.v_init)  # type: ignore[arg-type]  # checked in __init__
            state, n = initial_state(z, p), torch.zeros_like(z)
            for _ in range(T):
                s, state = if_step(z, state, p)
                n = n + s
        return n * self.spike_value.to(z.dtype) / T

    def extra_repr(self) -> str:
        rule = "" if self.reset == "subtract" and self.leak == 1.0 else f", reset={self.reset}, leak={self.leak:g}"
        return f"T={self.timesteps}{rule}"
