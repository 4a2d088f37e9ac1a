"""Accuracy of the exact engine against the truth, not against native PyTorch: SmolLM2-135M's
prefill logits (and Gemma-3-270M's, when its package is installed) in ULP from a float64 run of
the same weights, for native float32 PyTorch, the pinned float32 sequence the gate circuits
compute (``isp.exact.reference``, pairwise sums) and, with ``--exact-accumulation``, the pinned
sequence with every dot product summed exactly and rounded once (Kulisch accumulation).

    python benchmarks/exact_truth.py            # ~2 minutes on 2 idle cores (SmolLM2)
    python benchmarks/exact_truth.py --gemma    # + Gemma-3-270M (see benchmarks/exact_gemma3.py for its packages)

The gate circuits equal ``isp.exact.reference`` bit for bit (benchmarks/exact_llm.py checks it on
SmolLM2's prefill and every decode step), so the pinned rows are the SNN's accuracy. Writes
benchmarks/results/exact_truth.json and exact_truth.png (ULP histograms).
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import torch
from _common import RESULTS, print_table, write_results

import isospike as isp
from isospike.metrics import ulp_distance

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Water boils at a temperature of",
           "Once upon a time, a small robot"]


def ulp_stats(y: torch.Tensor, truth: torch.Tensor) -> dict:
    d = ulp_distance(y, truth).double()
    return {"median": float(d.median()), "mean": float(d.mean()), "p99": float(d.quantile(0.99)),
            "max": int(d.max()), "max_abs_error": float((y.double() - truth.double()).abs().max()), "values": d.numel()}


def logits_of(model, tok, prompts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(input_ids=tok(p, return_tensors="pt").input_ids).logits.flatten() for p in prompts])


def measure(name: str, tok, model, exact_accumulation: bool) -> dict:
    t = time.perf_counter()
    wide = torch.nn.Module.double(copy.deepcopy(model))  # transformers' .double() refuses GGUF-loaded models
    truth = logits_of(wide, tok, PROMPTS).float()
    del wide
    runs = {"native float32": lambda: model, "pinned (gates), pairwise sums": lambda: isp.exact.reference(model)}
    if exact_accumulation:
        runs["pinned, exact accumulation"] = lambda: isp.exact.reference(model, accumulate="exact")
    out: dict = {"prompts": PROMPTS, "float64_seconds": time.perf_counter() - t, "ulp_vs_float64": {}, "seconds": {}}
    diffs = {}
    for label, make in runs.items():
        t = time.perf_counter()
        y = logits_of(make(), tok, PROMPTS)
        out["seconds"][label] = time.perf_counter() - t
        out["ulp_vs_float64"][label] = ulp_stats(y, truth)
        diffs[label] = ulp_distance(y, truth).double()
        print(f"{name} / {label}: {out['ulp_vs_float64'][label]}", flush=True)
    native, pinned = (logits_of(m, tok, PROMPTS) for m in (model, isp.exact.reference(model)))
    out["pinned_vs_native"] = ulp_stats(pinned, native)
    out["_diffs"] = diffs
    return out


def plot(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        top = max(float(d.quantile(0.99)) for d in res["_diffs"].values())
        bins = torch.linspace(0, max(top, 1.0), 60)
        for (label, d), color in zip(res["_diffs"].items(), ("tab:gray", "tab:blue", "tab:green")):
            st = res["ulp_vs_float64"][label]
            ax.hist(d.clamp(max=float(bins[-1])).numpy(), bins=bins.numpy(), histtype="step", lw=1.6, color=color,
                    label=f"{label}: median {st['median']:.0f}, mean {st['mean']:.1f}")
        ax.set_yscale("log")
        ax.set_xlabel("ULP from a float64 run of the same weights (clipped at the 99th percentile)")
        ax.set_ylabel("logits")
        ax.set_title(f"{name}: prefill logits of {len(res['prompts'])} prompts")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gemma", action="store_true", help="also Gemma-3-270M (its PyPI packages must be installed)")
    ap.add_argument("--exact-accumulation", action="store_true", help="also the Kulisch-accumulated reference (slow)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from isospike.models import smollm2

    results = {"SmolLM2-135M": measure("SmolLM2-135M", *smollm2.load(), args.exact_accumulation)}
    if args.gemma:
        from exact_gemma3 import load as load_gemma

        tok, model, _ = load_gemma()
        results["Gemma-3-270M"] = measure("Gemma-3-270M", tok, model, args.exact_accumulation)
    plot(results, RESULTS / "exact_truth.png")
    rows = [[name, label, f"{st['median']:.0f}", f"{st['mean']:.1f}", f"{st['p99']:.0f}", f"{st['max_abs_error']:.2g}"]
            for name, res in results.items() for label, st in res["ulp_vs_float64"].items()]
    print_table(["model", "logits", "median ULP", "mean ULP", "p99 ULP", "max abs error"], rows)
    for res in results.values():
        del res["_diffs"]
    print(f"written: {write_results('exact_truth', results)}")


if __name__ == "__main__":
    main()
