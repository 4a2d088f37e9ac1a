"""The plain-PyTorch network a converted SNN equals: every spiking population replaced by the
quantizer it implements, synapses unwrapped, time removed.

* rate (IF, reset by subtraction, V(0) = v_init): ``theta / T * clip(floor((T z + v_init) /
  theta), 0, T)``; other reset rules and leaks (foreign NIR files): the neuron's own step run on
  the constant current -- exact for a population whose input current is constant over the T steps
  (the first hidden layer under direct input coding); deeper layers receive spike trains whose
  current varies over time, and equal it only within the residual bound checked by
  :func:`isospike.verify`.
* ttfs / mttfs: the level quantizer of each population (its nominal level table, rounding,
  signed channels, silent level and dead zone) -- exact; M-TTFS synapses keep their bias folding
  so the float operations are the same.
* sigma_delta: ``theta * round(ReLU(z) / theta)`` -- exact once the network has settled (at
  once with unlimited spikes per step).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import Tensor, fx, nn

from isospike.conversion.network import SpikingNetwork
from isospike.conversion.sigma_delta import SigmaDeltaPopulation
from isospike.conversion.timefold import CountingSynapse, TimeBroadcast, TimeFoldedNeuron
from isospike.conversion.ttfs import TTFSPopulation

if TYPE_CHECKING:
    from isospike.exact.model_conversion import ExactNetwork


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
            from isospike.neurons import IFParameters, if_step
            from isospike.neurons.integrate_fire import initial_state

            p = IFParameters(th, self.leak, self.reset, self.v_init)  # type: ignore[arg-type]  # checked in __init__
            state, n = initial_state(z, p), torch.zeros_like(z)
            for _ in range(T):
                s, state = if_step(z, state, p)
                n = n + s
        return n * self.spike_value.to(z.dtype) / T

    def extra_repr(self) -> str:
        rule = "" if self.reset == "subtract" and self.leak == 1.0 else f", reset={self.reset}, leak={self.leak:g}"
        return f"T={self.timesteps}{rule}"


class LevelQuantizer(nn.Module):
    """The activation of a TTFS / M-TTFS population as a plain function of its input: nearest
    (or floor) level of the nominal level table, signed channels, dead zone around the silent level."""

    def __init__(self, population: TTFSPopulation) -> None:
        super().__init__()
        self.population = copy.deepcopy(population)
        self.population.device = None if population.device is None else population.device.with_variation(None)

    def forward(self, z: Tensor) -> Tensor:
        p = self.population
        out = p(z)
        p.reset_counts()
        return out


class GridQuantizer(nn.Module):
    """``theta * round(ReLU(z) / theta)``: a settled sigma-delta neuron."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(self, z: Tensor) -> Tensor:
        return self.threshold * torch.round(torch.relu(z) / self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:.4g}"


class FoldedLayer(nn.Module):
    """A synaptic layer with a constant input offset folded into its bias:
    layer(x - o) + (layer(o) - layer(0)), the same float operations as an M-TTFS synapse."""

    def __init__(self, synapse: CountingSynapse) -> None:
        super().__init__()
        self.synapse = copy.deepcopy(synapse)
        object.__setattr__(self.synapse, "silent_source", synapse.silent_source)

    def forward(self, x: Tensor) -> Tensor:
        s = self.synapse
        offset = s._silent_offset(x)
        return s.layer(x - offset) + s._fold(offset)


def equivalent(snn: nn.Module) -> nn.Module:
    """The plain-PyTorch network ``snn`` provably equals (see the module docstring); for exact
    networks (:func:`isospike.exact.convert`), the pinned float32 reference."""
    from isospike.exact.model_conversion import ExactNetwork

    if isinstance(snn, ExactNetwork):
        return _exact_reference(snn)
    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"equivalent expects a network from isospike.convert or isospike.exact.convert, "
                        f"got {type(snn).__name__}")
    gm = copy.deepcopy(snn.graph_module)
    originals = dict(snn.graph_module.named_modules())
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        path = str(node.target)
        m = gm.get_submodule(path)
        new: nn.Module
        if isinstance(m, TimeFoldedNeuron):
            n = m.neuron
            new = RateQuantizer(n.threshold, n.v_init, snn.timesteps, n.spike_value, n.reset_mode, n.leak)
        elif isinstance(m, TTFSPopulation):
            new = LevelQuantizer(m)
        elif isinstance(m, SigmaDeltaPopulation):
            new = GridQuantizer(m.threshold)
        elif isinstance(m, CountingSynapse):
            orig = originals[path]
            assert isinstance(orig, CountingSynapse)  # gm is a copy of snn's graph module: same module types by path
            new = FoldedLayer(orig) if orig.silent_source is not None and orig.silent_source.masked else copy.deepcopy(m.layer)
        elif isinstance(m, TimeBroadcast):
            new = nn.Identity()
        else:
            continue
        gm.set_submodule(path, new)
    gm.recompile()
    eq = fx.GraphModule(gm, gm.graph)
    eq.coding = snn.coding  # type: ignore[assignment]  # torch stub: Module.__setattr__ takes any value
    return eq.eval()


def _exact_reference(net: ExactNetwork) -> nn.Module:
    """The float32 reference of an exact network (same weights, same pinned sequence)."""
    return net.reference()
