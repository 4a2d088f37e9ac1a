"""Running a spiking network and collecting what it did."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

from isospike.activity import LayerActivity
from isospike.batches import model_calls, several_batches
from isospike.conversion.network import SpikingNetwork
from isospike.conversion.sites.network import CodedNetwork
from isospike.errors import check_count
from isospike.observe import counting, leading_samples


@dataclass
class SimulationResult:
    """Output of :func:`simulate`.

    output: decoded network output, shaped like the ANN's (exact networks: their own output).
    spikes: total spikes emitted by all neuron layers (all samples, all steps); exact networks:
        the spikes of their gate neurons (gates that fired), all samples.
    layers: per layer path, its :class:`~isospike.activity.LayerActivity` (neurons, spikes,
        synaptic_ops, timesteps...: totals over the samples).
    timesteps: steps simulated per sample (1 for exact networks).
    samples: samples simulated.
    """

    output: Any
    spikes: int
    layers: dict[str, LayerActivity] = field(default_factory=dict)
    timesteps: int = 0
    samples: int = 0

    @property
    def synaptic_ops(self) -> int:
        return int(sum(s.synaptic_ops for s in self.layers.values()))

    @property
    def spikes_per_sample(self) -> float:
        return self.spikes / self.samples if self.samples else 0.0


def simulate(snn: Any, x: Any, timesteps: int | None = None, batch_size: int | None = None) -> SimulationResult:
    """Run ``snn`` on ``x`` (from the initial state, without autograd) and report its activity,
    as :func:`isospike.counting` observes it.

    ``snn``: a network from :func:`isospike.convert` (any coding, ``"exact"`` included) or
    :func:`isospike.exact.convert`, or a ``torch.compile`` wrapper of one. An exact network
    computes in one time step (``timesteps`` None or 1) and takes what it takes when called: a
    tensor, a tuple of positional arguments or a dict of keyword arguments.

    ``x`` may also be a DataLoader, a list or any iterable of batches (tensors, ``(x, y)`` tuples
    whose ``x`` is taken, dicts of keyword arguments for a model that takes them): the outputs
    of the batches are concatenated, their counts summed and ``samples`` counts them all. (A
    tuple given as ``x`` is one call's positional arguments for networks that take several.)

    ``batch_size``: simulate ``x`` in chunks of this many samples (each from the initial state),
    for batches whose simulation does not fit in memory at once; outputs and counts are those of
    one run over the whole batch."""
    from isospike.exact.model_conversion import ExactNetwork

    net = getattr(snn, "_orig_mod", snn)  # a torch.compile wrapper runs the original's modules
    if isinstance(net, ExactNetwork):
        return _simulate_exact(snn, x, timesteps, batch_size)
    if isinstance(net, CodedNetwork):
        return _simulate_sites(snn, net, x, timesteps, batch_size)
    if not isinstance(net, SpikingNetwork):
        raise TypeError(f"simulate expects a network returned by isospike.convert or isospike.exact.convert, got "
                        f"{type(net).__name__}")
    T = net.steps_of(timesteps)
    if not isinstance(x, Tensor):  # a DataLoader, a list of batches, an (x, y) pair, LabelledData
        return _simulate_batches(snn, x, timesteps, T, batch_size)
    chunk = x.shape[0] if batch_size is None or not x.dim() else check_count(batch_size, "batch_size")
    with torch.no_grad(), counting(snn) as c:
        if not x.dim() or chunk >= x.shape[0]:
            out = snn(x, timesteps=timesteps)
        else:
            out = _concat([snn(x[i:i + chunk], timesteps=timesteps) for i in range(0, x.shape[0], chunk)])
    return SimulationResult(output=out, spikes=c.spikes, layers=c.layers, timesteps=T,
                            samples=x.shape[0] if x.dim() else 1)


def _graph_inputs(x: Any, batch_size: int | None) -> Iterator[Tensor]:
    """The input tensors of a graph network's calls on ``x`` (see :func:`isospike.batches.model_calls`)."""
    for args, kwargs in model_calls(x, 1 << 62 if batch_size is None else check_count(batch_size, "batch_size")):
        if kwargs or len(args) != 1:
            raise TypeError(f"a network converted through its graph takes one input tensor per batch, got keyword "
                            f"arguments {sorted(kwargs)[:4]}; pass tensors, (x, y) pairs or a DataLoader of them")
        yield args[0]


def _simulate_batches(snn: Any, x: Any, timesteps: int | None, T: int, batch_size: int | None) -> SimulationResult:
    """A graph network over several batches: outputs concatenated, counts summed."""
    outs, samples = [], 0
    with torch.no_grad(), counting(snn) as c:
        for batch in _graph_inputs(x, batch_size):
            outs.append(snn(batch, timesteps=timesteps))
            samples += batch.shape[0] if batch.dim() else 1
    return SimulationResult(output=_concat(outs), spikes=c.spikes, layers=c.layers, timesteps=T, samples=samples)


def _concat(parts: list[Any]) -> Any:
    """Outputs of consecutive chunks of a batch as one output."""
    if len(parts) == 1:
        return parts[0]
    return tree_map(lambda *ys: torch.cat(ys) if isinstance(ys[0], Tensor) else ys[0], *parts)


def _simulate_sites(snn: Any, net: CodedNetwork, x: Any, timesteps: int | None, batch_size: int | None
                    ) -> SimulationResult:
    """A network coded at its sites (any model): each site runs its own window of ``net.timesteps``
    steps; ``x`` is what the model takes (a tensor, a dict of keyword arguments, a tuple of
    positional arguments, or an iterable of them such as a DataLoader)."""
    if timesteps not in (None, net.timesteps):
        raise ValueError(f"this {net.coding} network codes each site over its own window of {net.timesteps} steps; "
                         "convert it again with timesteps=... for another window")
    chunk = 1 << 62 if batch_size is None else check_count(batch_size, "batch_size")
    calls = [((*x,), {})] if isinstance(x, tuple) else list(model_calls(x, chunk))
    with torch.no_grad(), counting(snn) as c:
        outs = [snn(*args, **kwargs) for args, kwargs in calls]
    return SimulationResult(output=_concat(outs), spikes=c.spikes, layers=c.layers, timesteps=net.timesteps,
                            samples=c.samples)


def _simulate_exact(net: Any, x: Any, timesteps: int | None, batch_size: int | None) -> SimulationResult:
    """An exact gate network: one time step; per module path, its gates (neurons evaluated once
    per value), the spikes they fire and the synaptic events they cause."""
    if timesteps not in (None, 1):
        raise ValueError(f"exact networks compute in one time step (spatial bit coding); got timesteps={timesteps!r}")
    if several_batches(x):  # a DataLoader, LabelledData, a list of batches
        outs, samples = [], 0
        chunk = 1 << 62 if batch_size is None else check_count(batch_size, "batch_size")
        with torch.no_grad(), counting(net) as c:
            for call_args, call_kwargs in model_calls(x, chunk):
                outs.append(net(*call_args, **call_kwargs))
                samples += leading_samples((call_args, call_kwargs)) or 1
        return SimulationResult(output=_concat(outs), spikes=c.spikes, layers=c.layers, timesteps=1, samples=samples)
    args, kwargs = (x, {}) if isinstance(x, tuple) else ((), x) if isinstance(x, dict) else ((x,), {})
    samples = leading_samples((args, kwargs)) or 1
    chunk = samples if batch_size is None else check_count(batch_size, "batch_size")
    outs = []
    with torch.no_grad(), counting(net) as c:
        for i in range(0, max(samples, 1), chunk):
            def part(v: Any, i: int = i) -> Any:  # the batch's rows i .. i + chunk (other arguments as they are)
                batched = chunk < samples and isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == samples
                return v[i:i + chunk] if batched else v

            outs.append(net(*map(part, args), **{k: part(v) for k, v in kwargs.items()}))
    return SimulationResult(output=_concat(outs), spikes=c.spikes, layers=c.layers, timesteps=1, samples=samples)
