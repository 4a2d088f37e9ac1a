"""``accumulate="exact"`` (issue 32, item 6): correctly rounded dot products through a Kulisch
accumulator, checked against MPFR, its gate cost per multiply-add, and end-to-end accuracy of a
tiny Llama's logits against a float64 run of the same weights.

    python benchmarks/exact_accumulate.py

Writes benchmarks/results/exact_accumulate.json.
"""

from __future__ import annotations

import json
import time
import warnings

import gmpy2
import numpy as np
import torch

import isospike as isp
from _common import write_results
from isospike.exact.accumulate import exact_dot_gates, exact_dot_reference, netlists
from isospike.exact.formats import FLOAT32
from isospike.exact.ops import gate_options
from isospike.metrics import ulp_distance

warnings.filterwarnings("ignore")


def mpfr_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 dot products: the exact sum in 2,000-bit MPFR, rounded once."""
    out = []
    for ra, rb in zip(a.tolist(), b.tolist()):
        with gmpy2.context(gmpy2.context(precision=2000)):
            s = gmpy2.mpfr(0)
            for x, y in zip(ra, rb):
                s += gmpy2.mpfr(x) * gmpy2.mpfr(y)
        with gmpy2.context(gmpy2.ieee(32)):
            out.append(float(gmpy2.mpfr(s)))
    return torch.tensor(out, dtype=torch.float32)


def dot_check(rng: np.random.Generator) -> dict:
    """Random dot products of 3 kinds (N(0,1); exponents spread over 2^-140..2^120 with
    cancellation; 1,024 terms): gates == reference == MPFR, and how far the pairwise tree is."""
    opts = gate_options("benchmark", {})
    rows = {}
    for name, (n, k, spread) in {"normal_k64": (2000, 64, False), "wide_exponents_k16": (2000, 16, True),
                                 "normal_k1024": (200, 1024, False)}.items():
        a = torch.from_numpy(rng.standard_normal((n, k)).astype(np.float32))
        b = torch.from_numpy(rng.standard_normal((n, k)).astype(np.float32))
        if spread:
            a = a * torch.pow(2.0, torch.from_numpy(rng.integers(-140, 120, (n, k))).float())
            b = b * torch.pow(2.0, torch.from_numpy(rng.integers(-140, 0, (n, k))).float())
        t = time.perf_counter()
        g = exact_dot_gates(a, b, opts)
        seconds = time.perf_counter() - t
        r, m = exact_dot_reference(a, b), mpfr_dot(a, b)
        pairwise = isp.exact.TorchArith().dot(a, b)
        d = ulp_distance(pairwise, m)
        rows[name] = {"dots": n, "terms": k, "gates_equal_reference": bool(torch.equal(g.view(torch.int32), r.view(torch.int32))),
                      "reference_equal_mpfr": bool(torch.equal(r.view(torch.int32), m.view(torch.int32))),
                      "pairwise_ulp_vs_mpfr": {"median": float(d.double().median()), "mean": float(d.double().mean()),
                                               "max": int(d.max())},
                      "gate_seconds": seconds}
    return rows


def costs() -> dict:
    term, add, rnd = netlists(FLOAT32)
    mul_add = isp.exact.cost("mul", torch.float32).neurons + isp.exact.cost("add", torch.float32).neurons
    return {"kulisch_term_neurons": term.n_gates, "kulisch_add_neurons": add.n_gates,
            "kulisch_round_neurons": rnd.n_gates, "per_multiply_add_exact": term.n_gates + add.n_gates,
            "per_multiply_add_pairwise": mul_add, "ratio": (term.n_gates + add.n_gates) / mul_add}


def end_to_end() -> dict:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.tensor([[3, 17, 42, 5, 9, 77, 100, 2]])
    with torch.no_grad():
        truth = model.double()(input_ids=ids).logits.float()
        model.float()
        native = model(input_ids=ids).logits
        runs = {}
        for acc in ("pairwise", "exact"):
            t = time.perf_counter()
            gates = isp.exact.convert(model, accumulate=acc)(input_ids=ids).logits
            seconds = time.perf_counter() - t
            ref = isp.exact.reference(model, accumulate=acc)(input_ids=ids).logits
            runs[acc] = (gates, ref, seconds)
    out = {}
    for name, y in (("native_float32", native), ("pinned_pairwise", runs["pairwise"][0]),
                    ("pinned_exact", runs["exact"][0])):
        d = ulp_distance(y, truth).double()
        out[name] = {"median_ulp_vs_float64": float(d.median()), "mean_ulp_vs_float64": float(d.mean()),
                     "max_ulp_vs_float64": int(d.max())}
    for acc in ("pairwise", "exact"):
        g, r, s = runs[acc]
        out[f"pinned_{acc}"]["gates_equal_reference"] = bool(torch.equal(g.view(torch.int32), r.view(torch.int32)))
        out[f"pinned_{acc}"]["gate_seconds"] = s
    return out


def main() -> None:
    rng = np.random.default_rng(3)
    results = {"costs": costs(), "dot_products": dot_check(rng), "tiny_llama_prefill_logits": end_to_end()}
    print(json.dumps(results, indent=1))
    print(f"written: {write_results('exact_accumulate', results)}")


if __name__ == "__main__":
    main()
