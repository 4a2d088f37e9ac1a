"""all-MiniLM-L6-v2 end to end through the gate circuits: bit equality with the pinned float32
reference, ULP distance to the unmodified transformers model, time, gate evaluations, spikes.

    python benchmarks/exact_minilm.py

Three real sentences of at most 16 tokens, one at a time (batch 1): the full 6-layer encoder
plus mean pooling. Writes benchmarks/results/exact_minilm.json and exact_minilm_ulp.png (ULP
histogram of the token states against native PyTorch).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from _common import RESULTS, print_table, write_results

import isospike as isp
from isospike.models.minilm import SentenceEmbedder, load_minilm

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Neuromorphic chips process information with brief electrical pulses.",
    "Prices of wheat rose sharply after the drought hit the region.",
]
SEED_MEAN_ULP = 6.19  # NEXUS, Qwen3-0.6B (28 layers) vs PyTorch float32; one layer: 2.40


@torch.no_grad()
def main() -> None:
    tokenizer, model = load_minilm()
    embedder = SentenceEmbedder(model).eval()  # encoder + mean pooling: both through the gates
    snn, ref = isp.exact.convert(embedder), isp.exact.reference(embedder)
    rows, results, all_ulp = [], [], []
    hooks = {}  # the token states of each network's encoder
    for name, net in (("snn", snn), ("ref", ref), ("native", embedder)):
        net.encoder.register_forward_hook(lambda m, a, o, name=name: hooks.__setitem__(name, o.last_hidden_state))
    for text in SENTENCES:
        enc = tokenizer([text], return_tensors="pt", truncation=True, max_length=16)
        n_tok = int(enc["input_ids"].shape[1])
        t0 = time.perf_counter()
        emb = snn(**enc)
        seconds = time.perf_counter() - t0
        counts = snn.counts()
        ref_emb = ref(**enc)
        nat_emb = embedder(**enc)
        hidden, ref_hidden, nat_hidden = hooks["snn"], hooks["ref"], hooks["native"]
        equal = torch.equal(hidden.view(torch.int32), ref_hidden.view(torch.int32)) and torch.equal(
            emb.view(torch.int32), ref_emb.view(torch.int32))
        u_tok = isp.metrics.ulp_distance(hidden, nat_hidden).flatten()
        u_emb = isp.metrics.ulp_distance(emb, nat_emb).flatten()
        all_ulp.append(u_tok)
        cos = float(torch.cosine_similarity(emb, nat_emb))
        r = {
            "sentence": text, "tokens": n_tok, "seconds": seconds, "bit_identical_to_reference": equal,
            "token_states_ulp_vs_native": {"mean": float(u_tok.double().mean()), "median": float(u_tok.double().median()),
                                           "max": int(u_tok.max())},
            "embedding_ulp_vs_native": {"mean": float(u_emb.double().mean()), "max": int(u_emb.max())},
            "max_abs_error_vs_native": float((hidden - nat_hidden).abs().max()),
            "cosine_similarity_vs_native": cos,
            "gate_evaluations": counts.gate_evaluations, "spikes": counts.spikes,
            "synaptic_events": counts.synaptic_events,
        }
        results.append(r)
        rows.append([n_tok, f"{seconds:.1f}", equal, f"{r['token_states_ulp_vs_native']['mean']:.1f}",
                     r["token_states_ulp_vs_native"]["median"], r["token_states_ulp_vs_native"]["max"],
                     f"{r['embedding_ulp_vs_native']['mean']:.1f}", f"{cos:.9f}",
                     f"{counts.gate_evaluations / 1e9:.0f}", f"{counts.spikes / 1e9:.0f}"])
    print_table(["tokens", "seconds", "bit-identical", "ULP mean", "ULP median", "ULP max", "emb ULP mean",
                 "cosine", "G gate evals", "G spikes"], rows)
    print(f"\nseed paper: mean ULP {SEED_MEAN_ULP} vs PyTorch (Qwen3-0.6B, 28 layers, sequential accumulation);"
          " here 0 ULP vs the pinned reference and the figures above vs native transformers (sdpa attention,"
          " BLAS accumulation order).")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    u = np.sort(torch.cat(all_ulp).numpy().astype(np.float64))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    frac = np.arange(1, len(u) + 1) / len(u)
    ax.step(np.maximum(u, 0.5), frac, where="post", color="tab:blue", label="gate SNN vs native transformers")
    ax.axvline(0.5, color="tab:green", ls="--", label="gate SNN vs pinned reference: all 0 ULP")
    ax.set_xscale("log")
    ax.set_xlim(0.4, max(u.max(), 10) * 1.5)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("ULP distance of token states (0 plotted at 0.5)")
    ax.set_ylabel("fraction of values <= x")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"all-MiniLM-L6-v2 through gates, 3 sentences: mean {u.mean():.1f}, median {np.median(u):.0f} ULP")
    fig.tight_layout()
    atomic_savefig(fig, RESULTS / "exact_minilm_ulp.png", dpi=120)
    plt.close(fig)
    path = write_results("exact_minilm", {"results": results, "seed_mean_ulp": SEED_MEAN_ULP})
    print(f"written: {path} and {RESULTS / 'exact_minilm_ulp.png'}")


if __name__ == "__main__":
    main()
