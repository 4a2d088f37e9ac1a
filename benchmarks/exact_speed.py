"""Throughput of the bit-sliced gate circuits against the machine's own bitwise throughput.

    python benchmarks/exact_speed.py [--log2n 20]

For float32 add, mul, fma, div, sqrt on 2^20 elements: operations per second end to end
(spatial bit encoding in, every gate, decoding out) and lane-gate evaluations per second
(neurons x values / time). Baselines measured in the same run: numpy and torch ``&`` over packed
uint64 arrays of 2^20 words (DESIGN.md's memory-bound anchor) and 2^14 words (cache-resident);
the ratio is taken against the fastest of them.
Also compares with the speed of the seed paper's reference code on this machine kind (from
DESIGN.md: ~4.9k adds/s, ~315 muls/s) and lists neurons and depth per operation next to the
seed's counts. Writes benchmarks/results/exact_speed.json.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import print_table, time_call, write_results
from _gpu import bitwise_and_lane_ops_per_s, device_column, end_to_end_rate, triton_kernel_rate

import isospike.exact as ex
from isospike.exact.cost import SEED_FP32_NEURONS

SEED_CODE_OPS_PER_S = {"add": 4.9e3, "mul": 315.0}  # DESIGN.md 9b, measured on this machine kind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n = 1 << args.log2n
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(n, generator=g) * 100 for _ in range(3))
    bpos = b.abs()

    base: dict[str, float] = {}
    for words in (1 << 20, 1 << 14):
        x = np.random.default_rng(0).integers(0, 2**63, words, dtype=np.uint64)
        y = np.random.default_rng(1).integers(0, 2**63, words, dtype=np.uint64)
        z = np.empty_like(x)
        reps = max(args.repeats, (1 << 24) // words)
        t = time_call(lambda: np.bitwise_and(x, y, out=z), repeats=reps)["median_s"]
        base[f"numpy & 2^{words.bit_length() - 1} words"] = words * 64 / t
        tx, ty = torch.from_numpy(x.view(np.int64)), torch.from_numpy(y.view(np.int64))
        tz = torch.empty_like(tx)
        t = time_call(lambda: torch.bitwise_and(tx, ty, out=tz), repeats=reps)["median_s"]
        base[f"torch & 2^{words.bit_length() - 1} words"] = words * 64 / t
    anchor = max(base.values())  # the machine's best bitwise throughput in this run

    ops = {
        "add": lambda: ex.add(a, b), "mul": lambda: ex.mul(a, b), "fma": lambda: ex.fma(a, b, c),
        "div": lambda: ex.div(a, b), "sqrt": lambda: ex.sqrt(bpos),
    }
    rows, results = [], []
    for op, fn in ops.items():
        fn()  # compile/warm
        t = time_call(fn, repeats=args.repeats)["median_s"]
        cost = ex.cost(op)
        lane_gates = cost.neurons * n / t
        r = {
            "op": op, "elements": n, "seconds": t, "ops_per_s": n / t, "neurons": cost.neurons,
            "depth": cost.depth, "synapses": cost.synapses, "lane_gates_per_s": lane_gates,
            "ratio_to_best_bitwise_baseline": lane_gates / anchor,
            "seed_paper_neurons": SEED_FP32_NEURONS.get(op),
        }
        if op in SEED_CODE_OPS_PER_S:
            r["speedup_vs_seed_reference_code"] = (n / t) / SEED_CODE_OPS_PER_S[op]
        results.append(r)
        rows.append([op, cost.neurons, SEED_FP32_NEURONS.get(op, "-"), cost.depth, f"{n / t / 1e6:.1f}",
                     f"{lane_gates / 1e9:.0f}", f"{lane_gates / anchor:.2f}",
                     f"{r.get('speedup_vs_seed_reference_code', float('nan')):,.0f}x" if op in SEED_CODE_OPS_PER_S else "-"])
    print("bitwise baselines (lane-ops/s): " + ", ".join(f"{k}: {v / 1e9:.0f} G" for k, v in base.items()))
    print_table(["op (float32)", "neurons", "seed neurons", "depth", "M ops/s", "G lane-gates/s",
                 "ratio to best bitwise", "vs seed code"], rows)
    cpu_lane_gates = {r["op"]: r["lane_gates_per_s"] for r in results}

    def on_gpu(device: torch.device) -> list[dict]:
        """Fused Triton kernel (packed words) and end to end on device tensors, 2^22 values, against
        the device's own bitwise AND and this run's CPU figure."""
        gpu_and = bitwise_and_lane_ops_per_s(device, 1 << 26)
        out = []
        for op in ops:
            kernel = triton_kernel_rate(op, 22, device, 128, 2)
            e2e = end_to_end_rate(op, 22, device)
            out.append({"op": op, "kernel_lane_gates_per_s": kernel["lane_gates_per_s"],
                        "end_to_end_ops_per_s": e2e["ops_per_s"], "bitwise_and_lane_ops_per_s": gpu_and,
                        "kernel_ratio_to_bitwise_and": kernel["lane_gates_per_s"] / gpu_and,
                        "kernel_over_this_cpu": kernel["lane_gates_per_s"] / cpu_lane_gates[op]})
        return out

    gpu = device_column(on_gpu, "gates.triton_kernel")
    if gpu["rows"]:
        print_table(["op (float32)", "device", "kernel G lane-gates/s", "x device bitwise AND", "x this CPU",
                     "end-to-end M ops/s"],
                    [[r["op"], gpu["device"], f"{r['kernel_lane_gates_per_s'] / 1e9:,.0f}",
                      f"{r['kernel_ratio_to_bitwise_and']:.2f}", f"{r['kernel_over_this_cpu']:.0f}",
                      f"{r['end_to_end_ops_per_s'] / 1e6:,.0f}"] for r in gpu["rows"]])
    path = write_results("exact_speed", {
        "elements": n, "bitwise_baselines_lane_ops_per_s": base, "best_bitwise_lane_ops_per_s": anchor,
        "results": results, "seed_reference_code_ops_per_s": SEED_CODE_OPS_PER_S, "gpu": gpu,
    })
    print(f"written: {path}")


if __name__ == "__main__":
    main()
