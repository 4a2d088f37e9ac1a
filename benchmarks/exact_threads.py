"""Decode time of a small model through the gates as the cores it gets change (issue 32, item 5).

    python benchmarks/exact_threads.py [--tokens 4]

Runs the same decode (a tiny random Llama, prefill of 5 tokens, then greedy tokens with the KV
cache) in fresh processes: alone, pinned to one core (``taskset -c 0``), and beside one
CPU-bound process (a busy loop on every core but one... here: one busy loop). Prints seconds
per decoded token and the thread counts the run saw. Writes
benchmarks/results/exact_threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch, transformers, numba
import isospike as isp
torch.manual_seed(0)
cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
model = transformers.LlamaForCausalLM(cfg).eval()
snn = isp.exact.convert(model)
ids = torch.tensor([[3, 17, 42, 5, 9]])
threads_before = torch.get_num_threads()
with torch.no_grad():
    snn.generate(ids[:, :2], max_new_tokens=1, do_sample=False, pad_token_id=0)  # warm: circuits, kernels
    t0 = time.perf_counter()
    out = snn(input_ids=ids, use_cache=True)
    t1 = time.perf_counter()
    past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    steps = []
    for _ in range(int(sys.argv[1])):
        t = time.perf_counter()
        out = snn(input_ids=nxt, past_key_values=past, use_cache=True)
        steps.append(time.perf_counter() - t)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
print(json.dumps({"prefill_s": t1 - t0, "decode_s_per_token": sorted(steps)[len(steps) // 2],
                  "torch_threads": threads_before, "torch_threads_after": torch.get_num_threads(),
                  "numba_threads": numba.get_num_threads(), "affinity": len(__import__("os").sched_getaffinity(0))}))
"""


def run(prefix: list[str], tokens: int) -> dict:
    out = subprocess.run(prefix + [sys.executable, "-c", CHILD, str(tokens)], capture_output=True, text=True,
                         env=os.environ.copy(), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4)
    args = ap.parse_args()
    results = {"cores": os.cpu_count(), "load_before": os.getloadavg()}
    results["alone"] = run([], args.tokens)
    results["taskset_c0"] = run(["taskset", "-c", "0"], args.tokens)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        results["beside_busy_loop"] = run([], args.tokens)
    finally:
        busy.kill()
        busy.wait()
    for k in ("alone", "taskset_c0", "beside_busy_loop"):
        r = results[k]
        print(f"{k:18s} prefill {r['prefill_s']:7.2f} s  decode {r['decode_s_per_token']:6.2f} s/token  "
              f"threads torch {r['torch_threads']}->{r['torch_threads_after']} numba {r['numba_threads']} "
              f"affinity {r['affinity']}")
    base = results["alone"]["decode_s_per_token"]
    for k in ("taskset_c0", "beside_busy_loop"):
        print(f"slowdown {k}: {results[k]['decode_s_per_token'] / base:.2f}x")
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "exact_threads.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
