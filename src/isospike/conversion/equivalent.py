"""The plain-PyTorch network a converted SNN equals: every spiking population replaced by the
function it states it computes (``population.equivalent(T)``), synapses unwrapped, time removed.

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
* exact: the pinned float32 reference (:func:`isospike.exact.reference`).
"""

from __future__ import annotations

import copy

from torch import Tensor, fx, nn

from isospike.conversion.network import SpikingNetwork, unthread_timesteps
from isospike.conversion.sites.build import equivalent_sites
from isospike.conversion.sites.network import CodedNetwork
from isospike.conversion.timefold import CountingSynapse, SpikingPopulation, TimeBroadcast
from isospike.neurons.populations import RateQuantizer
from isospike.neurons.sigma_delta import GridQuantizer
from isospike.neurons.ttfs import LevelQuantizer

__all__ = ["FoldedLayer", "GridQuantizer", "LevelQuantizer", "RateQuantizer", "equivalent"]


class FoldedLayer(nn.Module):
    """A synaptic layer with a constant input offset folded into its bias:
    layer(x - o) + (layer(o) - layer(0)), the same float operations as an M-TTFS synapse."""

    def __init__(self, synapse: CountingSynapse) -> None:
        super().__init__()
        self.synapse = CountingSynapse(copy.deepcopy(synapse.layer), synapse.spike_input, synapse.static_input,
                                       silent_source=synapse.silent_source)

    def forward(self, x: Tensor) -> Tensor:
        s = self.synapse
        offset = s._silent_offset(x)
        return s.layer(x - offset) + s._fold(offset)


def equivalent(snn: nn.Module) -> nn.Module:
    """The plain-PyTorch network ``snn`` provably equals (see the module docstring); for exact
    networks (:func:`isospike.exact.convert`), the pinned float32 reference. ``snn`` may be a
    ``torch.compile`` wrapper."""
    from isospike.conversion.coding import coding_of

    snn = getattr(snn, "_orig_mod", snn)
    coding = coding_of(snn, "isospike.equivalent")
    if coding.equivalent is not None:
        return coding.equivalent(snn)
    if isinstance(snn, CodedNetwork):  # any model, coded at its sites: the same class, each site quantized
        return equivalent_sites(snn)
    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"isospike.equivalent: the {coding.name!r} coding states no equivalent for a "
                        f"{type(snn).__name__}")
    gm = unthread_timesteps(copy.deepcopy(snn.graph_module))
    originals = dict(snn.graph_module.named_modules())
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        path = str(node.target)
        m = gm.get_submodule(path)
        new: nn.Module
        if isinstance(m, SpikingPopulation):
            new = m.equivalent(snn.timesteps)
        elif isinstance(m, CountingSynapse):
            orig = originals[path]
            assert isinstance(orig, CountingSynapse)  # gm is a copy of snn's graph module: same module types by path
            masked = orig.silent_source is not None and orig.silent_source.masked
            new = FoldedLayer(orig) if masked else copy.deepcopy(m.layer)
        elif isinstance(m, TimeBroadcast):
            new = nn.Identity()
        else:
            continue
        gm.set_submodule(path, new)
    gm.recompile()
    eq = fx.GraphModule(gm, gm.graph)
    eq.coding = snn.coding  # type: ignore[assignment]  # torch stub: Module.__setattr__ takes any value
    return eq.eval()
