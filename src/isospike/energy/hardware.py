"""Hardware descriptions: energy per action, a memory hierarchy, a network on chip.

All energies are in picojoules. Every preset names the source of each number; where a
number is derived (e.g. a power divided by a clock rate) the derivation is written next to it,
and where a value is assumed rather than measured, the preset says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm:
# 64-bit SRAM read by capacity; DRAM 1.3-2.6 nJ per 64 bits.
HOROWITZ_SRAM_PJ_PER_64BIT = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))
HOROWITZ_DRAM_PJ_PER_64BIT = 1300.0


def sram_pj_per_bit(capacity_bytes: float, table=HOROWITZ_SRAM_PJ_PER_64BIT, dram=HOROWITZ_DRAM_PJ_PER_64BIT) -> float:
    """Read energy per bit of a memory holding ``capacity_bytes``: Horowitz's 64-bit SRAM reads,
    linear between his capacities (as the Lemaire et al. 2022 model interpolates), the 8 KB
    value below 8 KB, DRAM above 1 MB."""
    caps = [c for c, _ in table]
    vals = [v for _, v in table]
    if capacity_bytes <= caps[0]:
        e = vals[0]
    elif capacity_bytes > caps[-1]:
        e = dram
    else:
        for (c0, v0), (c1, v1) in zip(table, table[1:]):
            if c0 < capacity_bytes <= c1:
                e = v0 + (v1 - v0) * (capacity_bytes - c0) / (c1 - c0)
                break
    return e / 64.0


@dataclass(frozen=True)
class Hardware:
    """Energy model of a neuromorphic (or conventional) chip. Energies in pJ.

    compute: ``mac_pj`` (multiply-accumulate, for non-spiking layers), ``ac_pj`` (one synaptic
    event: accumulate a weight), ``neuron_update_pj`` (integrate/compare one neuron for one
    step), ``gate_pj`` (one threshold-gate evaluation in an exact circuit).
    all-in flags: ``ac_includes_weight_read`` / ``update_includes_state`` when the measured
    figure already includes the memory traffic (Loihi, TrueNorth).
    memory: weights, membranes, activations and spike buffers are read/written at
    :func:`sram_pj_per_bit` of the memory that holds them (its capacity decides the cost),
    unless ``memory_pj_per_bit`` fixes a single value; ``weight_bits``, ``state_bits``,
    ``activation_bits``, ``spike_bits`` (bits moved per spike event).
    ``on_chip_weight_bytes``: the weight memory on the chip. A network whose weights fit is read
    from banks sized per layer (as above); one whose weights do not (a decoder LLM) fetches every
    weight from DRAM (Horowitz's 64-bit DRAM read, or ``memory_pj_per_bit`` when fixed).
    ``math.inf``: every weight stays on chip (multi-chip systems, weights in place in crossbars).
    network on chip: ``neurons_per_core`` (placement), ``hop_pj`` (per spike per hop),
    ``local_spike_pj`` (per spike delivered within a core).
    analog compute-in-memory: ``compute_in_memory`` (weights never move), ``crossbar_cell_pj``
    (per synaptic event in the array), ``dac_pj`` (per driven row: per input spike),
    ``adc_pj`` (per output conversion); ``analog_integration``: the membranes integrate on the
    array's bit lines and reach the neuron through the ADC, so no membrane is read or written
    in memory (a memristive synapse unit, Matterhorn); off, neurons keep membranes in SRAM.
    ``cim_input_bits``: an ANN on the same crossbars feeds its activations bit-serially through
    1-bit row drivers (ISAAC): per input that many row drives, per output that many conversions.
    optoelectronic TTFS synapses: ``device_read_pj`` per device read, shared by
    ``device_sharing`` synapses.
    """

    name: str
    description: str
    mac_pj: float
    ac_pj: float
    neuron_update_pj: float
    gate_pj: float = 0.0
    ac_includes_weight_read: bool = False
    update_includes_state: bool = False
    memory_pj_per_bit: float | None = None
    weight_bits: int = 32
    state_bits: int = 32
    activation_bits: int = 32
    spike_bits: int = 16
    on_chip_weight_bytes: float = 8 * 1024 * 1024
    neurons_per_core: int = 1024
    hop_pj: float = 0.0
    local_spike_pj: float = 0.0
    compute_in_memory: bool = False
    crossbar_cell_pj: float = 0.0
    dac_pj: float = 0.0
    adc_pj: float = 0.0
    analog_integration: bool = False
    cim_input_bits: int = 8
    device_read_pj: float = 0.0
    device_sharing: int = 1
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if f.name == "on_chip_weight_bytes" and v == math.inf:
                continue
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"Hardware.{f.name} must be a finite number >= 0, got {v!r}")
        for name in ("neurons_per_core", "device_sharing", "weight_bits", "state_bits", "activation_bits", "spike_bits",
                     "cim_input_bits"):
            if getattr(self, name) < 1:
                raise ValueError(f"Hardware.{name} must be >= 1, got {getattr(self, name)!r}")

    def memory_pj_per_bit_for(self, capacity_bytes: float) -> float:
        if self.memory_pj_per_bit is not None:
            return self.memory_pj_per_bit
        return sram_pj_per_bit(max(capacity_bytes, 1.0))

    def weight_pj_per_bit(self, layer_bytes: float, network_bytes: float) -> float:
        """Read energy per weight bit of a layer holding ``layer_bytes`` in a network holding
        ``network_bytes`` of weights: its own SRAM bank when the network's weights fit on the chip
        (``on_chip_weight_bytes``), else DRAM."""
        if network_bytes <= self.on_chip_weight_bytes:
            return self.memory_pj_per_bit_for(layer_bytes)
        return self.memory_pj_per_bit if self.memory_pj_per_bit is not None else HOROWITZ_DRAM_PJ_PER_64BIT / 64.0

    def with_(self, **changes) -> Hardware:
        """A copy with some fields changed (e.g. ``hop_pj``, ``device_sharing``)."""
        return replace(self, **changes)


_HOROWITZ = "Horowitz, ISSCC 2014 (45 nm)"
_LOIHI = "Davies et al., IEEE Micro 38(1) 2018, Table 1 (Loihi, 14 nm)"
_TRUENORTH = "Merolla et al., Science 345, 2014 / Akopyan et al., IEEE TCAD 2015 (TrueNorth, 28 nm)"
_ISAAC = ("Shafiee et al., ISAAC, ISCA 2016, Table I (32 nm): per-operation values derived from the listed "
          "powers -- 8-bit ADC 2 mW at 1.28 GS/s -> 1.56 pJ/conversion; 128x128 memristor array 0.3 mW at a "
          "100 ns read cycle -> 30 pJ/array read -> 1.8 fJ per cell; 1-bit DAC 4 mW per 1,024 at 10 MHz -> 0.39 pJ")

PRESETS: dict[str, Hardware] = {
    "horowitz45": Hardware(
        name="horowitz45",
        description="digital 45 nm accelerator, fp32 arithmetic, SRAM by capacity (ANN baseline and digital SNN)",
        mac_pj=4.6, ac_pj=0.9, neuron_update_pj=1.8, gate_pj=0.03,
        sources={"mac_pj": f"{_HOROWITZ}: fp32 mult 3.7 + add 0.9", "ac_pj": f"{_HOROWITZ}: fp32 add",
                 "neuron_update_pj": f"{_HOROWITZ}: two fp32 adds (integrate, compare with threshold)",
                 "gate_pj": f"{_HOROWITZ}: an 8-bit integer add (0.03 pJ) as the cost of one 1-bit threshold gate "
                            "(assumption: a gate is cheaper than any add)",
                 "memory": f"{_HOROWITZ}: SRAM 64-bit read 10/20/100 pJ at 8 KB/32 KB/1 MB, DRAM 1.3 nJ",
                 "on_chip_weight_bytes": "8 MiB of on-chip weight SRAM (assumption: an edge accelerator's budget); "
                                         "larger networks (LLMs, BERT) read every weight from DRAM",
                 "hop_pj": "no network on chip modelled (single core)"},
    ),
    "loihi": Hardware(
        name="loihi",
        description="Intel Loihi: all-in synaptic ops and neuron updates, mesh NoC",
        mac_pj=4.6, ac_pj=23.6, neuron_update_pj=52.0, gate_pj=23.6,
        ac_includes_weight_read=True, update_includes_state=True, neurons_per_core=1024,
        hop_pj=3.5, local_spike_pj=1.7, spike_bits=16, on_chip_weight_bytes=math.inf,
        sources={"ac_pj": f"{_LOIHI}: synaptic spike op 23.6 pJ (includes the synaptic memory read)",
                 "neuron_update_pj": f"{_LOIHI}: neuron update 52 pJ (inactive) .. 81 pJ (active); 52 used",
                 "local_spike_pj": f"{_LOIHI}: within-tile spike energy 1.7 pJ",
                 "hop_pj": f"{_LOIHI}: tile hop 3.0 pJ (E-W) / 4.0 pJ (N-S); mean 3.5",
                 "mac_pj": f"{_HOROWITZ}: non-spiking input layers run on an embedded core (assumption)",
                 "gate_pj": "a gate is one neuron with one or more synaptic events: its synaptic events are "
                            "charged at ac_pj; gate_pj counts the neuron update at the same all-in rate (assumption)",
                 "neurons_per_core": f"{_LOIHI}: 1,024 neurons per core",
                 "on_chip_weight_bytes": "unbounded: a multi-chip system keeps every weight in synaptic memory "
                                         "(the all-in synaptic op includes its read)"},
    ),
    "truenorth": Hardware(
        name="truenorth",
        description="IBM TrueNorth: all-in synaptic events, 2-D mesh, 256 neurons per core",
        mac_pj=4.6, ac_pj=26.0, neuron_update_pj=0.0, gate_pj=0.0,
        ac_includes_weight_read=True, update_includes_state=True, neurons_per_core=256, hop_pj=2.3, spike_bits=16,
        on_chip_weight_bytes=math.inf,
        sources={"ac_pj": f"{_TRUENORTH}: 26 pJ per synaptic event, all-in (neuron updates included)",
                 "hop_pj": f"{_TRUENORTH}: 2.3 pJ per spike per hop",
                 "neuron_update_pj": "included in the synaptic event figure",
                 "gate_pj": "a gate is a neuron: its synaptic events are charged at the all-in ac_pj, which "
                            "includes the neuron update",
                 "mac_pj": f"{_HOROWITZ}: non-spiking input layers on a host (assumption)",
                 "neurons_per_core": f"{_TRUENORTH}: 256 neurons per core",
                 "on_chip_weight_bytes": "unbounded: a multi-chip system keeps every weight in its crossbars"},
    ),
    "cim-memristor": Hardware(
        name="cim-memristor",
        description="analog memristive crossbars (weights in place), ADC per output, digital neurons",
        mac_pj=4.6, ac_pj=0.0, neuron_update_pj=1.8, gate_pj=0.03, compute_in_memory=True,
        crossbar_cell_pj=0.0018, dac_pj=0.39, adc_pj=1.56, neurons_per_core=128, hop_pj=0.0,
        on_chip_weight_bytes=math.inf,
        sources={"crossbar_cell_pj": _ISAAC, "adc_pj": _ISAAC, "dac_pj": _ISAAC,
                 "neuron_update_pj": f"{_HOROWITZ}: two fp32 adds", "mac_pj": f"{_HOROWITZ}",
                 "memory": f"{_HOROWITZ}: SRAM by capacity for membranes and spike buffers; no weight reads",
                 "on_chip_weight_bytes": "unbounded: every weight is programmed in place in the arrays"},
    ),
    "optoelectronic": Hardware(
        name="optoelectronic",
        description="TTFS with optoelectronic decay synapses read through an ADC (Otters-style), digital neurons",
        mac_pj=4.6, ac_pj=0.9, neuron_update_pj=1.8, gate_pj=0.03, device_read_pj=1.56, device_sharing=1,
        neurons_per_core=1024, hop_pj=3.5,
        sources={"device_read_pj": f"{_ISAAC}: one 8-bit ADC conversion per device read (assumption: the "
                                   "optoelectronic device's own read energy is not published in the sources available)",
                 "ac_pj": f"{_HOROWITZ}: the digitized read is accumulated by an fp32 add",
                 "hop_pj": f"{_LOIHI}: tile hop (assumption: a Loihi-like mesh)",
                 "on_chip_weight_bytes": "8 MiB of on-chip weight SRAM (assumption, as horowitz45)"},
    ),
}


def get_hardware(hardware: str | Hardware) -> Hardware:
    if isinstance(hardware, Hardware):
        return hardware
    if not isinstance(hardware, str):
        raise TypeError(f"hardware must be a preset name ({', '.join(sorted(PRESETS))}) or an "
                        f"isospike.energy.Hardware, got {type(hardware).__name__}")
    try:
        return PRESETS[hardware]
    except KeyError:
        raise ValueError(f"unknown hardware {hardware!r}; presets: {', '.join(sorted(PRESETS))}") from None


def crossbar_hardware(crossbar: Any, base: str = "cim-memristor", analog_integration: bool = True) -> Hardware:
    """The preset ``base`` with the energies of a memristive crossbar unit
    (:class:`isospike.devices.MemristiveCrossbar`: ``cell_read_pj``, ``dac_pj``, ``adc_pj``).
    ``analog_integration``: the membranes integrate on the bit lines and the ADC hands each neuron
    its value (the memristive synapse unit of Matterhorn), so no membrane moves through SRAM; False
    keeps the preset's digital neurons with SRAM membranes."""
    missing = [k for k in ("cell_read_pj", "dac_pj", "adc_pj") if not isinstance(getattr(crossbar, k, None), (int, float))]
    if missing:
        raise TypeError(f"crossbar_hardware takes a crossbar unit (isospike.devices.MemristiveCrossbar); "
                        f"{type(crossbar).__name__} has no {', '.join(missing)}")
    suffix = "+crossbar" if analog_integration else "+crossbar (SRAM membranes)"
    return get_hardware(base).with_(crossbar_cell_pj=crossbar.cell_read_pj, dac_pj=crossbar.dac_pj,
                                    adc_pj=crossbar.adc_pj, compute_in_memory=True,
                                    analog_integration=analog_integration, name=f"{base}{suffix}")


def mesh_hops(cores_a: range, cores_b: range, mesh_width: int) -> float:
    """Mean Manhattan distance between the cores of two layers on a mesh (row-major order)."""
    def xy(c: int) -> tuple[int, int]:
        return c % mesh_width, c // mesh_width

    ca = [xy(c) for c in cores_a]
    cb = [xy(c) for c in cores_b]
    ax, ay = sum(x for x, _ in ca) / len(ca), sum(y for _, y in ca) / len(ca)
    return sum(abs(x - ax) + abs(y - ay) for x, y in cb) / len(cb)


def placement(neurons_per_layer: list[int], neurons_per_core: int) -> tuple[list[range], int]:
    """Layers on consecutive cores of a square mesh: (cores of each layer, mesh width)."""
    cores, start = [], 0
    for n in neurons_per_layer:
        k = max(1, math.ceil(n / neurons_per_core))
        cores.append(range(start, start + k))
        start += k
    return cores, max(1, math.ceil(math.sqrt(start)))
