"""The bit-sliced gate evaluation in plain PyTorch: packed int64 words on any device.

The same algorithm as :mod:`isospike.exact.backends.bitsliced` (64 lanes per word, every gate its
bitwise form), written with torch tensor operations so it runs wherever the tensors live (CPU,
CUDA, ...). Gates are evaluated level by level (all gates whose inputs are ready), each gate
kind of a level as one vectorized operation over its gates and words; lanes are processed in
chunks so the wire table stays bounded. On CPU it gives the same bits as the numba backend
(tested); the numba kernel stays the CPU fast path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import Tensor

from isospike.exact.gates import BY_CODE
from isospike.exact.netlist import Netlist

WIRE_BUDGET = 1 << 25  # int64 words held in the wire table at once (256 MiB)
_LANE_BITS = torch.arange(64, dtype=torch.int64)


@dataclass(frozen=True)
class Level:
    """The gates of one kind at one depth: output wires and input wires [n, arity]."""

    code: int
    dst: Tensor
    srcs: Tensor


@cache
def schedule(netlist: Netlist) -> tuple[Level, ...]:
    """The netlist's gates grouped by depth and kind (CPU index tensors)."""
    base = netlist.first_gate_wire
    depth = np.zeros(netlist.n_wires, dtype=np.int64)
    for g in range(netlist.n_gates):
        ins = netlist.ins[g][netlist.ins[g] >= 0]
        depth[base + g] = 1 + (int(depth[ins].max()) if len(ins) else 0)
    levels = []
    gate_depth = depth[base:]
    for d in range(1, int(gate_depth.max()) + 1 if netlist.n_gates else 1):
        at = np.nonzero(gate_depth == d)[0]
        for code in np.unique(netlist.kinds[at]):
            gates = at[netlist.kinds[at] == code]
            arity = BY_CODE[int(code)].arity
            levels.append(Level(int(code), torch.from_numpy(base + gates),
                                torch.from_numpy(netlist.ins[gates][:, :arity].astype(np.int64))))
    return tuple(levels)


def pack(bits: Tensor, width: int) -> Tensor:
    """int64 [N] bit patterns -> int64 [width, ceil(N / 64)] spike-line words (bit j of word w
    of line k = bit k of lane 64 w + j)."""
    n = bits.shape[0]
    words = (n + 63) // 64
    lanes = torch.zeros(words * 64, dtype=torch.int64, device=bits.device)
    lanes[:n] = bits
    lanes = lanes.view(words, 64)
    shifts = torch.arange(width, device=bits.device).view(-1, 1, 1)
    lane_bits = _LANE_BITS.to(bits.device)
    return (((lanes.unsqueeze(0) >> shifts) & 1) << lane_bits).sum(-1)  # distinct powers: sum == OR


def unpack(words: Tensor, n: int) -> Tensor:
    """Inverse of :func:`pack`: int64 [width, W] -> int64 [n] bit patterns."""
    width = words.shape[0]
    lane_bits = _LANE_BITS.to(words.device)
    bits = (words.unsqueeze(-1) >> lane_bits) & 1  # [width, W, 64]
    shifts = torch.arange(width, device=words.device).view(-1, 1, 1)
    return (bits << shifts).sum(0).reshape(-1)[:n]


def popcount(x: Tensor) -> Tensor:
    """Set bits of each int64 word (SWAR; arithmetic shifts masked)."""
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    return ((x * 0x0101010101010101) >> 56) & 0xFF


def _lane_mask(lo: int, words: int, n: int, device: torch.device) -> Tensor:
    """int64 [words]: all bits set on words fully inside the n lanes, the valid low bits on the
    last one, 0 beyond."""
    valid = torch.clamp(n - (lo + torch.arange(words, device=device)) * 64, 0, 64)
    return torch.where(valid >= 64, torch.full_like(valid, -1), (torch.ones_like(valid) << valid) - 1)


def evaluate(netlist: Netlist, inputs: dict[str, Tensor], count: bool = False) -> tuple[dict[str, Tensor], tuple[int, int]]:
    """Evaluate ``netlist`` on N lanes given each input word's bit patterns (int64 [N] tensors, one
    device). Returns the output words' bit patterns (int64 [N] each) and, with ``count``,
    (spikes fired by the gates, synaptic events = spikes x fan-out, input spikes included)."""
    names = list(netlist.input_widths)
    n = int(inputs[names[0]].shape[0]) if names else 0
    device = inputs[names[0]].device if names else torch.device("cpu")
    levels = [(lv.code, lv.dst.to(device), lv.srcs.to(device)) for lv in schedule(netlist)]
    fanout = torch.from_numpy(netlist.fanout).to(device)
    base = netlist.first_gate_wire
    total_words = (n + 63) // 64
    chunk = max(1, WIRE_BUDGET // max(netlist.n_wires, 1))
    outputs: dict[str, list[Tensor]] = {name: [] for name in netlist.outputs}
    spikes = events = 0
    for lo in range(0, total_words, chunk):
        words = min(chunk, total_words - lo)
        lanes = slice(lo * 64, min(n, (lo + words) * 64))
        wires = torch.empty((netlist.n_wires, words), dtype=torch.int64, device=device)
        wires[0] = 0
        wires[1] = -1
        row = 2
        for name in names:
            width = netlist.input_widths[name]
            wires[row:row + width] = pack(inputs[name][lanes], width)
            row += width
        for code, dst, srcs in levels:
            wires[dst] = BY_CODE[code].bitwise(*(wires[srcs[:, i]] for i in range(srcs.shape[1])))
        if count:
            mask = _lane_mask(lo, words, n, device)
            per_wire = popcount(wires[2:] & mask).sum(1)
            spikes += int(per_wire[base - 2:].sum())
            events += int((per_wire * fanout[2:]).sum())
        for name, bits in netlist.outputs.items():
            outputs[name].append(unpack(wires[torch.tensor(bits, device=device)], lanes.stop - lanes.start))
    return {name: torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64, device=device)
            for name, parts in outputs.items()}, (spikes, events)
