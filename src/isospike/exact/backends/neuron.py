"""The neuron-level backend: every gate is simulated as an integrate-and-fire membrane.

For each gate, one time step from rest:  V = leak * V_rest + sum_i w_i s_i  (+ noise),
spike iff V >= theta. V_rest = 0 because a gate evaluates once from a reset membrane, so the
leak multiplies zero and never acts: the results are identical for every leak (this is the
single-time-step argument of spatial bit coding, shown rather than assumed).

Noise models (sigma = ``noise``):
  "synapse":   every synaptic weight of every neuron gets w + sigma * N(0, 1), drawn per
               evaluation (per lane);
  "input":     the circuit's input spikes get + sigma * N(0, 1), clipped to [0, 1] (the
               seed paper's model; internal spikes stay clean);
  "threshold": every threshold becomes theta * (1 + sigma * N(0, 1)).

Gates of equal depth are independent, so they are simulated together, level by level.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
import torch

from isospike.exact.gates import BY_CODE, MAX_ARITY
from isospike.exact.netlist import Netlist

NoiseModel = Literal["synapse", "input", "threshold"]
NOISE_MODELS = ("synapse", "input", "threshold")


@dataclass(frozen=True)
class Level:
    wires: torch.Tensor  # int64 [n] output wire of each gate
    ins: torch.Tensor  # int64 [n, 4] input wires (0 = constant 0 where unused)
    weights: torch.Tensor  # float32 [n, 4] (0 where unused)
    thresholds: torch.Tensor  # float32 [n]
    fanout: torch.Tensor  # int64 [n]


@cache
def levels_of(netlist: Netlist) -> tuple[Level, ...]:
    base = netlist.first_gate_wire
    depth = np.zeros(netlist.n_wires, dtype=np.int64)
    for g in range(netlist.n_gates):
        src = netlist.ins[g][netlist.ins[g] >= 0]
        depth[base + g] = 1 + (int(depth[src].max()) if len(src) else 0)
    gate_depth = depth[base:]
    out = []
    for d in range(1, int(gate_depth.max(initial=0)) + 1):
        gs = np.flatnonzero(gate_depth == d)
        ins = netlist.ins[gs].astype(np.int64)
        w = np.zeros((len(gs), MAX_ARITY), dtype=np.float32)
        th = np.zeros(len(gs), dtype=np.float32)
        for row, gate in enumerate(gs):
            kind = BY_CODE[int(netlist.kinds[gate])]
            w[row, : kind.arity] = kind.weights
            th[row] = kind.threshold
        ins[ins < 0] = 0
        out.append(Level(
            wires=torch.from_numpy(base + gs),
            ins=torch.from_numpy(ins),
            weights=torch.from_numpy(w),
            thresholds=torch.from_numpy(th),
            fanout=torch.from_numpy(netlist.fanout[base + gs]),
        ))
    return tuple(out)


def evaluate(
    netlist: Netlist,
    inputs: dict[str, np.ndarray],
    *,
    leak: float = 1.0,
    noise: float = 0.0,
    noise_model: NoiseModel = "synapse",
    generator: torch.Generator | None = None,
    max_elements: int = 1 << 25,
) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """Simulate ``netlist`` neuron by neuron on N lanes. ``inputs[name]``: uint64 [N] bit
    patterns. Returns the outputs (uint64 [N] bit patterns) and (spikes, synaptic events)."""
    if not 0.0 < leak <= 1.0:
        raise ValueError(f"leak (beta) must be in (0, 1], got {leak}")
    if not noise >= 0 or noise == float("inf"):  # also refuses NaN
        raise ValueError(f"noise (sigma) must be a finite number >= 0, got {noise}")
    if noise_model not in NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}")
    n = len(next(iter(inputs.values())))
    levels = levels_of(netlist)
    chunk = max(1, min(n, max_elements // max(netlist.n_wires, 1)))
    outs = {name: np.zeros(n, dtype=np.uint64) for name in netlist.outputs}
    spikes = events = 0
    in_fanout = torch.from_numpy(netlist.fanout[2:netlist.first_gate_wire])
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        m = hi - lo
        vals = torch.zeros(netlist.n_wires, m, dtype=torch.float32)
        vals[1] = 1.0
        row = 2
        for name, width in netlist.input_widths.items():
            patterns = inputs[name][lo:hi].astype(np.uint64)
            in_bits = (patterns[None, :] >> np.arange(width, dtype=np.uint64)[:, None]) & np.uint64(1)
            vals[row:row + width] = torch.from_numpy(in_bits.astype(np.float32))
            row += width
        in_spikes = vals[2:netlist.first_gate_wire]
        events += int((in_spikes.sum(1).to(torch.int64) * in_fanout).sum())
        if noise > 0 and noise_model == "input":
            vals[2:row] = (in_spikes + noise * torch.randn(in_spikes.shape, generator=generator)).clamp_(0, 1)
        for lv in levels:
            x = vals[lv.ins]  # [g, 4, m]
            w = lv.weights[:, :, None]
            if noise > 0 and noise_model == "synapse":
                eps = torch.randn(x.shape, generator=generator)
                w = w + noise * eps * (lv.weights[:, :, None] != 0)
            current = (w * x).sum(1)  # [g, m]
            v_rest = torch.zeros_like(current)
            v = leak * v_rest + current
            th = lv.thresholds[:, None]
            if noise > 0 and noise_model == "threshold":
                th = th * (1 + noise * torch.randn(v.shape, generator=generator))
            s = (v >= th).to(torch.float32)
            vals[lv.wires] = s
            count = s.sum(1).to(torch.int64)
            spikes += int(count.sum())
            events += int((count * lv.fanout).sum())
        for name, bits in netlist.outputs.items():
            b = (vals[torch.tensor(bits)] > 0.5).numpy().astype(np.uint64)
            outs[name][lo:hi] = (b << np.arange(len(bits), dtype=np.uint64)[:, None]).sum(0, dtype=np.uint64)
    return outs, (spikes, events)
