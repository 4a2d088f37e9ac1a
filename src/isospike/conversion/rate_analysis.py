"""Where a rate-coded SNN departs from its ANN, layer by layer.

For each spiking layer: the ANN activation a (same inputs, eval mode), the SNN output rate r
over T steps (spike count x threshold / T), their gap a - r, and the residual membrane potential
v(T) / theta left in each neuron. An IF neuron with reset by subtraction represents its input
exactly when v(T) / theta stays in [0, 1); the residual error is what leaves that range
(Huang et al. model it as additive noise on the ANN activation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from isospike.conversion.network import SpikingNetwork
from isospike.conversion.timefold import SpikingPopulation, TimeFoldedNeuron


@dataclass
class LayerGap:
    """Per-layer tensors, flattened over samples and neurons (float32)."""

    ann: Tensor  # ANN activation a
    snn_rate: Tensor  # SNN output value per step, averaged over T
    residual: Tensor  # v(T) / theta

    @property
    def gap(self) -> Tensor:
        return self.ann - self.snn_rate


@torch.no_grad()
def layer_gaps(ann: nn.Module, snn: SpikingNetwork, x: Tensor, timesteps: int | None = None) -> dict[str, LayerGap]:
    """Run ``ann`` (eval) and ``snn`` on ``x`` and pair, by module path, each spiking layer
    with the ANN activation module at the same path."""
    T = snn.timesteps if timesteps is None else int(timesteps)
    neurons = {p: n for p, n in snn.neurons() if isinstance(n, TimeFoldedNeuron)}
    modules = dict(ann.named_modules())
    missing = [p for p in neurons if p not in modules]
    if missing:
        raise ValueError(f"the ANN has no modules at the spiking layers' paths {missing}: pass the ANN that was converted")
    ann_out: dict[str, Tensor] = {}
    snn_in: dict[str, Tensor] = {}
    handles = [modules[p].register_forward_hook(lambda m, i, o, p=p: ann_out.__setitem__(p, o.detach()))
               for p in neurons]
    handles += [n.register_forward_hook(lambda m, i, o, p=p: snn_in.__setitem__(p, i[0].detach()))
                for p, n in neurons.items()]
    was_training = ann.training
    try:
        ann.eval()
        with torch.no_grad():
            ann(x)
            snn.forward_steps(x, timesteps=T)
    finally:
        for h in handles:
            h.remove()
        ann.train(was_training)
    result = {}
    for p, n in neurons.items():
        a = ann_out[p]
        spikes, v_end = n.run(snn_in[p], T)  # the population's own run again, for its final membrane
        r = spikes.reshape(T, -1, *spikes.shape[1:]).mean(0)
        v = v_end / n.neuron.threshold
        result[p] = LayerGap(a.flatten().float(), r.flatten().float(), v.flatten().float())
    return result


def neuron_layers(snn: SpikingNetwork) -> dict[str, SpikingPopulation]:
    return dict(snn.neurons())
