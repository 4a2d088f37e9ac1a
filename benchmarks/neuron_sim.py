"""Multi-step IF and LIF layer simulation: isospike against SpikingJelly, snnTorch and a plain
torch loop, in the same run, with a check that all produce the same spikes.

    python benchmarks/neuron_sim.py            # needs the bench extras: make bench-setup

Cases: T=32, batch 64, 4096 neurons (262k neuron-steps per step) and a 1M-neuron layer
(batch 16 x 65536). IF: reset by subtraction, threshold 1. LIF: beta = 0.5 (SpikingJelly
tau = 2, decay_input=False), reset to zero -- the settings where all libraries define the same
recursion. Writes benchmarks/results/neuron_sim.json.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import print_table, time_call, write_results
from _gpu import device_column, open_neuromorphic_lif

import isospike as isp
from isospike.neurons import IFNeuron, IFParameters, IFState, if_step


def isospike_run(x: torch.Tensor, kind: str, binary: bool = False) -> torch.Tensor:
    n = IFNeuron(threshold=1.0, reset="subtract", step_mode="multi") if kind == "IF" else \
        IFNeuron(threshold=1.0, leak=0.5, reset="zero", step_mode="multi")
    with torch.no_grad():
        return n.multi_step(x, binary=binary)


def isospike_counted_run(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Float spikes with the spikes per step observed (isospike.counting), as simulate() runs it."""
    n = IFNeuron(threshold=1.0, reset="subtract", step_mode="multi") if kind == "IF" else \
        IFNeuron(threshold=1.0, leak=0.5, reset="zero", step_mode="multi")
    with torch.no_grad(), isp.counting(n) as seen:
        out = n(x)
    assert seen.spikes >= 0
    return out


def read_write_floor(x: torch.Tensor) -> np.ndarray:
    """Read the input once and write one float32 value per neuron and step into a new array (what
    any float-output layer must do, allocation included)."""
    out = np.empty(tuple(x.shape), dtype=np.float32)
    np.copyto(out, x.numpy())
    return out


def isospike_binary_run(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Same simulation, spikes returned as one-byte bool events instead of float32."""
    return isospike_run(x, kind, binary=True)


def torch_loop_run(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The obvious torch implementation: isospike's own step function in a Python loop."""
    p = IFParameters(1.0, 1.0, "subtract") if kind == "IF" else IFParameters(1.0, 0.5, "zero")
    state = IFState(torch.zeros_like(x[0]))
    out = torch.empty_like(x)
    with torch.no_grad():
        for t in range(x.shape[0]):
            out[t], state = if_step(x[t], state, p)
    return out


def spikingjelly_run(x: torch.Tensor, kind: str) -> torch.Tensor:
    from spikingjelly.activation_based import neuron

    if kind == "IF":
        n = neuron.IFNode(v_threshold=1.0, v_reset=None, step_mode="m")
    else:
        n = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, step_mode="m")
    with torch.no_grad():
        return n(x)


def snntorch_run(x: torch.Tensor, kind: str) -> torch.Tensor:
    import snntorch

    if kind == "IF":
        n = snntorch.Leaky(beta=1.0, threshold=1.0, reset_mechanism="subtract")
    else:
        n = snntorch.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero")
    mem = n.reset_mem()
    out = torch.empty_like(x)
    with torch.no_grad():
        for t in range(x.shape[0]):
            out[t], mem = n(x[t], mem)
    return out


PEERS = {
    "isospike (counted)": isospike_counted_run,
    "isospike (bool out)": isospike_binary_run,
    "spikingjelly": spikingjelly_run,
    "snntorch": snntorch_run,
    "torch loop": torch_loop_run,
}
NOT_PEERS = ("torch loop", "isospike (bool out)", "isospike (counted)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    cases = [("T32 B64 N4096", 32, 64, 4096), ("T32 1M neurons", 32, 16, 65536)]
    g = torch.Generator().manual_seed(0)
    results, rows = [], []
    for case, T, B, N in cases:
        x = torch.rand(T, B, N, generator=g) * 0.7  # mean input 0.35: ~35% IF firing rate
        floor = time_call(lambda: x.sum(), repeats=args.repeats)["median_s"]  # read the input once
        rw_floor = time_call(lambda: read_write_floor(x), repeats=args.repeats)["median_s"]
        for kind in ("IF", "LIF"):
            ref = isospike_run(x, kind)
            ours = time_call(lambda: isospike_run(x, kind), repeats=args.repeats)["median_s"]
            entry = {"case": case, "neuron": kind, "T": T, "batch": B, "neurons": N,
                     "isospike_s": ours, "memory_floor_s": floor, "read_write_floor_s": rw_floor, "peers": {}}
            rows.append([case, kind, "isospike", f"{1e3 * ours:.2f}", "1.00", "1.000000"])
            for name, fn in PEERS.items():
                try:
                    spikes = fn(x, kind)
                except ImportError as exc:
                    print(f"skipping {name}: {exc} (install with `make bench-setup`)")
                    continue
                agree = float((spikes.bool() == ref.bool()).float().mean())
                t = time_call(lambda: fn(x, kind), repeats=args.repeats)["median_s"]
                entry["peers"][name] = {"seconds": t, "speedup_of_isospike": t / ours, "spike_agreement": agree}
                rows.append([case, kind, name, f"{1e3 * t:.2f}", f"{t / ours:.2f}", f"{agree:.6f}"])
            rows.append([case, kind, "memory floor (read)", f"{1e3 * floor:.2f}", f"{floor / ours:.2f}", ""])
            rows.append([case, kind, "read+write floor", f"{1e3 * rw_floor:.2f}", f"{rw_floor / ours:.2f}", ""])
            peer_times = [p["seconds"] for k, p in entry["peers"].items() if k not in NOT_PEERS]
            if peer_times:
                entry["speedup_vs_fastest_peer"] = min(peer_times) / ours
                if "isospike (bool out)" in entry["peers"]:
                    entry["bool_out_speedup_vs_fastest_peer"] = min(peer_times) / entry["peers"]["isospike (bool out)"]["seconds"]
            entry["isospike_over_floor"] = ours / floor
            entry["isospike_over_read_write_floor"] = ours / rw_floor
            if "isospike (counted)" in entry["peers"]:
                entry["counted_over_read_write_floor"] = entry["peers"]["isospike (counted)"]["seconds"] / rw_floor
            results.append(entry)
    print_table(["case", "neuron", "implementation", "ms", "time / isospike", "spike agreement"], rows)
    print("\nisospike returns float32 spikes like the peers; 'bool out' returns one-byte events.")
    print("memory floor = reading the input once (x.sum()); read+write floor = reading it once and writing one float32")
    print("per neuron and step into a new array; 'counted' = float spikes with isospike.counting observing them.")
    # the Open Neuromorphic setup (linear + LIF, batch 16, T = 500) on the device, vs snnTorch there
    gpu = device_column(lambda device: [open_neuromorphic_lif(device, w) for w in (4096, 16384)], "neurons")
    if gpu["rows"]:
        print_table(["neurons", "device", "isospike forward (ms)", "snnTorch forward (ms)", "snnTorch fwd+bwd (ms)"],
                    [[r["neurons"], gpu["device"], f"{r['isospike_forward_ms']:.1f}",
                      "-" if r["snntorch_forward_ms"] is None else f"{r['snntorch_forward_ms']:.1f}",
                      "-" if r["snntorch_forward_backward_ms"] is None else f"{r['snntorch_forward_backward_ms']:.1f}"]
                     for r in gpu["rows"]])
    path = write_results("neuron_sim", {"results": results, "gpu": gpu})
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
