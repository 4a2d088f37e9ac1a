"""Energy of a network's activity on a hardware model.

Full model (default), per layer and per inference:

    compute         MACs x mac_pj (non-spiking layers), synaptic events x ac_pj (spike-driven
                    layers; crossbar cell reads + row drivers + ADC conversions on
                    compute-in-memory hardware), neuron updates x neuron_update_pj, gate
                    evaluations x gate_pj, device reads x device_read_pj / device_sharing
    data movement   weight reads (one per operation, weight_bits each, at the cost of a memory
                    sized to hold the layer's weights, or of DRAM when the network's weights do
                    not fit the chip's ``on_chip_weight_bytes``; none in a crossbar or when the
                    hardware's synaptic-op figure includes them), membrane read + write per neuron update
                    (none when included or integrated in an analog array), spike events written and read (spike_bits each), ANN
                    activations written and read (activation_bits each)
    communication   spikes x hops to the next layer's cores x hop_pj, plus spikes x local_spike_pj

The short formula ("ops" mode) is the one most SNN papers use: E = mac_pj x MACs + ac_pj x ACs.
"""

from __future__ import annotations

from dataclasses import dataclass

from isospike.energy.activity import LayerActivity, NetworkActivity
from isospike.energy.hardware import Hardware, mesh_hops, placement

PJ = 1e-12
SPIKE_BUFFER_BYTES = 8 * 1024  # event queues: the smallest memory of the hierarchy


@dataclass
class LayerEnergy:
    """Energy of one layer per inference, in joules, with the counts it comes from."""

    name: str
    kind: str
    macs: float
    acs: float
    neuron_updates: float
    spikes: float
    gate_evaluations: float
    compute_j: float
    data_movement_j: float
    communication_j: float

    @property
    def energy_j(self) -> float:
        return self.compute_j + self.data_movement_j + self.communication_j


def _hops(activity: NetworkActivity, hw: Hardware) -> dict[str, float]:
    """Mean mesh hops from each spiking population to the next one (placement in order)."""
    pops = [layer for layer in activity.layers if layer.kind == "neuron"]
    if not pops or hw.hop_pj == 0:
        return {}
    cores, width = placement([max(p.neurons, 1) for p in pops], hw.neurons_per_core)
    hops = {}
    for i, p in enumerate(pops):
        hops[p.name] = mesh_hops(cores[i], cores[i + 1], width) if i + 1 < len(pops) else 0.0
    return hops


def _rows_driven(layer: LayerActivity) -> float:
    """Crossbar row drives of a dense layer per inference: its fan-in (rows per array read) times
    the array reads (output positions = outputs / output channels, channels = weights / fan-in)."""
    fan_in = layer.dense_ops / max(layer.outputs, 1)
    if layer.parameters <= 0 or fan_in <= 0:
        return fan_in
    return layer.outputs * fan_in * fan_in / layer.parameters


def network_weight_bytes(activity: NetworkActivity, hw: Hardware) -> float:
    """Bytes of weights the network's synapse layers hold at ``hw.weight_bits`` (exact gate
    circuits wire theirs)."""
    return sum(layer.parameters for layer in activity.layers if layer.kind in ("ann", "mac", "ac")) * hw.weight_bits / 8


def layer_energy(layer: LayerActivity, hw: Hardware, hops: float = 0.0, network_bytes: float = 0.0) -> LayerEnergy:
    """Energy of one layer per inference. ``network_bytes``: the weights of the whole network
    (:func:`network_weight_bytes`), which decide whether weights are read on chip or from DRAM."""
    compute = data = comm = 0.0
    mem = hw.memory_pj_per_bit_for
    weight_bytes = layer.parameters * hw.weight_bits / 8
    # a product of two activations (attention's QK^T) holds no weights: its operands stay on chip
    weight_pj_per_bit = hw.weight_pj_per_bit(weight_bytes, network_bytes) if layer.parameters > 0 else mem(0.0)
    if layer.kind == "ann":
        if hw.compute_in_memory:
            # the ANN on the same crossbars, as in ISAAC: activations enter bit-serially through
            # 1-bit row drivers; every bit cycle reads the array and converts every output
            bits = hw.cim_input_bits
            compute += bits * (layer.dense_ops * hw.crossbar_cell_pj + _rows_driven(layer) * hw.dac_pj
                               + layer.outputs * hw.adc_pj)
        else:
            compute += layer.dense_ops * hw.mac_pj
            data += layer.dense_ops * hw.weight_bits * weight_pj_per_bit
        act_bytes = max(layer.outputs, 1) * hw.activation_bits / 8
        data += 2 * layer.outputs * hw.activation_bits * mem(act_bytes)
    elif layer.kind == "mac":
        compute += layer.macs * hw.mac_pj
        data += layer.macs * hw.weight_bits * weight_pj_per_bit
    elif layer.kind == "ac":
        if hw.compute_in_memory:
            compute += layer.acs * hw.crossbar_cell_pj + layer.input_events * hw.dac_pj + layer.outputs * hw.adc_pj
        else:
            compute += layer.acs * hw.ac_pj
            if not hw.ac_includes_weight_read:
                data += layer.acs * hw.weight_bits * weight_pj_per_bit
    elif layer.kind == "neuron":
        compute += layer.neuron_updates * hw.neuron_update_pj
        if not (hw.update_includes_state or hw.analog_integration):
            state_bytes = max(layer.neurons, 1) * hw.state_bits / 8
            data += 2 * layer.neuron_updates * hw.state_bits * mem(state_bytes)
        data += 2 * layer.spikes * hw.spike_bits * mem(SPIKE_BUFFER_BYTES)
        comm += layer.spikes * (hops * hw.hop_pj + hw.local_spike_pj)
    elif layer.kind == "gates":
        # fully spatial circuits: each gate is a physical neuron, weights are wired constants
        compute += layer.gate_evaluations * hw.gate_pj + layer.acs * hw.ac_pj
        comm += layer.spikes * hw.local_spike_pj
    else:
        raise ValueError(f"unknown layer kind {layer.kind!r}")
    compute += layer.device_reads * hw.device_read_pj / max(hw.device_sharing, 1)  # optoelectronic synapses
    return LayerEnergy(layer.name, layer.kind, layer.macs if layer.kind != "ann" else layer.dense_ops, layer.acs,
                       layer.neuron_updates, layer.spikes, layer.gate_evaluations,
                       compute * PJ, data * PJ, comm * PJ)


def full_energy(activity: NetworkActivity, hw: Hardware) -> list[LayerEnergy]:
    hops = _hops(activity, hw)
    network_bytes = network_weight_bytes(activity, hw)
    return [layer_energy(layer, hw, hops.get(layer.name, 0.0), network_bytes) for layer in activity.layers]


def ops_energy(activity: NetworkActivity, hw: Hardware) -> list[LayerEnergy]:
    """E = mac_pj x MACs + ac_pj x ACs (ANN layers: every MAC), everything else ignored."""
    out = []
    for layer in activity.layers:
        macs = layer.dense_ops if layer.kind == "ann" else layer.macs
        out.append(LayerEnergy(layer.name, layer.kind, macs, layer.acs, layer.neuron_updates, layer.spikes,
                               layer.gate_evaluations, (macs * hw.mac_pj + layer.acs * hw.ac_pj) * PJ, 0.0, 0.0))
    return out
