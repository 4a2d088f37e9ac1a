"""Sharded exact evaluation: 1 vs 2 gloo ranks on this machine, and the scaling model for a 70B
model on N workers, on paper.

    python benchmarks/exact_distributed.py

Workload: the first two blocks of SmolLM2-135M (real weights) and its output head on an 8-token
prompt, through the gates (count=False). Each rank gets ``cores / ranks`` numba and torch threads.
The scaling model (Amdahl on the matrix products' share of the gate work) takes the gate
evaluations per decoded token measured by benchmarks/exact_llm.py and scales them by parameter
count; per-worker throughput is this machine's (2 cores), and the H100 target of 100x that.
Writes benchmarks/results/exact_distributed.json.
"""

from __future__ import annotations

import json
import os
import socket
import time

import numpy as np
import torch
import torch.distributed as dist
from _common import RESULTS, print_table, write_results

PROMPT = [1, 504, 3575, 282, 2367, 314, 8826, 30]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(rank: int, world: int, port: int, out: str) -> None:
    threads = max(1, (os.cpu_count() or 1) // world)
    os.environ["NUMBA_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    import isospike as isp
    from isospike.models import smollm2

    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    _, llm = smollm2.load(layers=2, tokenizer=False)
    snn = isp.exact.convert(llm, shard=world > 1, count=False)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        snn(input_ids=ids[:, :2])  # warm-up: circuits built, kernels compiled
        start = time.perf_counter()
        logits = snn(input_ids=ids).logits
        seconds = time.perf_counter() - start
    if rank == 0:
        np.save(out + ".npy", logits.view(torch.int32).numpy())
        with open(out + ".json", "w") as f:
            json.dump({"seconds": seconds}, f)
    if world > 1:
        dist.destroy_process_group()


def product_share() -> float:
    """Share of a decoded token's gate evaluations spent in Linear layers (matrix products),
    from a counted decode step of the 2-block slice."""
    import isospike as isp
    from isospike.models import smollm2

    _, llm = smollm2.load(layers=2, tokenizer=False)
    snn = isp.exact.convert(llm)
    with torch.no_grad():
        snn(input_ids=torch.tensor([PROMPT[:1]]))
    linear = {name for name, m in llm.named_modules() if isinstance(m, torch.nn.Linear)}
    counts = snn.layer_counts()
    total = sum(c.gate_evaluations for c in counts.values())
    return sum(c.gate_evaluations for name, c in counts.items() if name in linear) / total


def main() -> None:
    import torch.multiprocessing as mp

    from isospike.exact.distributed import scaling_model

    tmp = str(RESULTS / ".exact_distributed")
    timings, outputs = {}, {}
    for world in (1, 2):
        mp.spawn(_run, args=(world, _free_port(), f"{tmp}-{world}"), nprocs=world, join=True)
        with open(f"{tmp}-{world}.json") as f:
            timings[world] = json.load(f)["seconds"]
        outputs[world] = np.load(f"{tmp}-{world}.npy")
        os.remove(f"{tmp}-{world}.json")
        os.remove(f"{tmp}-{world}.npy")
    identical = bool(np.array_equal(outputs[1], outputs[2]))
    share = product_share()
    llm_path = RESULTS / "exact_llm.json"
    per_token = json.loads(llm_path.read_text())["speed"]["per_decoded_token"]["gate_evaluations"] \
        if llm_path.is_file() else 6.9e11
    speed_path = RESULTS / "exact_speed.json"
    lane_gates = max(r["lane_gates_per_s"] for r in json.loads(speed_path.read_text())["results"]) \
        if speed_path.is_file() else 1e11
    scale = 70e9 / 134.5e6
    rows = [["this machine, 1 rank", f"{timings[1]:.1f} s", "1.00x", ""],
            ["this machine, 2 gloo ranks", f"{timings[2]:.1f} s", f"{timings[1] / timings[2]:.2f}x",
             "bit-identical" if identical else "DIFFERENT"]]
    model_rows = []
    for label, rate in (("2-core CPU (measured)", lane_gates), ("H100 (target: 100x the CPU)", 100 * lane_gates)):
        for n in (1, 8, 64, 512):
            m = scaling_model(per_token * scale, rate, n, share)
            model_rows.append({"worker": label, **m})
    print_table(["run", "8-token prefill, 2 blocks + head", "speedup", "result"], rows)
    print(f"\nscaling model, 70B parameters ({scale:.0f}x SmolLM2's gate work per token, products "
          f"{100 * share:.1f}% of it):")
    print_table(["worker", "workers", "s / token", "speedup"],
                [[r["worker"], r["ranks"], f"{r['seconds_per_token']:.3g}", f"{r['speedup']:.1f}x"] for r in model_rows])
    path = write_results("exact_distributed", {
        "workload": "SmolLM2-135M, 2 blocks + head, 8-token prompt, gates (count=False)",
        "seconds": {str(k): v for k, v in timings.items()}, "speedup_2_ranks": timings[1] / timings[2],
        "bit_identical": identical, "product_share_of_gate_evaluations": share,
        "gate_evaluations_per_token_70b": per_token * scale, "lane_gates_per_s_cpu": lane_gates,
        "scaling_model": model_rows})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
