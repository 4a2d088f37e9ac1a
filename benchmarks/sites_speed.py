"""Speed of the site front end: a QNN-equal coding in spiking mode against its QNN, side by side,
on two real transformers (all-MiniLM-L6-v2 and SmolLM2-135M-Instruct).

    python benchmarks/sites_speed.py            # ~5 minutes on 2 cores

For each model and coding (TTFS, M-TTFS, sigma-delta; one scale per input channel): the forward
time of the native float model, of the QNN (``isp.equivalent``) and of the spiking network
(median of --repeats, inference, batch 8 x 64 tokens of IMDB reviews), the SNN / QNN ratio
(target: at most 2), and that the two give identical logits. Spike trains are never simulated
step by step where the result is provably the same: a TTFS neuron's spike time and read follow
from its level, a sigma-delta neuron's held value from its target. Writes
benchmarks/results/sites_speed.json.
"""

from __future__ import annotations

import argparse
import warnings

import torch
from _common import print_table, time_call, write_results

import isospike as isp
from isospike.data import load_movie_reviews
from isospike.models import smollm2
from isospike.models.minilm import load_minilm

CODINGS = {"ttfs": {}, "mttfs": {}, "sigma_delta": {"levels": 64}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    texts = load_movie_reviews("imdb").train.texts[:16]
    results, rows = {}, []
    for name, load in (("all-MiniLM-L6-v2", load_minilm), ("SmolLM2-135M", smollm2.load)):
        tok, model = load()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        enc = tok(texts, return_tensors="pt", truncation=True, max_length=64, padding=True)
        calibration = [{"input_ids": enc.input_ids[i:i + 8], "attention_mask": enc.attention_mask[i:i + 8]}
                       for i in (0, 8)]
        batch = calibration[0]
        with torch.no_grad():
            native = time_call(lambda: model(**batch), repeats=args.repeats)["median_s"]
        for coding, options in CODINGS.items():
            snn = isp.convert(model, coding=coding, calibration=calibration, channel_scales=True, **options)
            qnn = isp.equivalent(snn)
            with torch.no_grad():
                same = torch.equal(_logits(snn(**batch)), _logits(qnn(**batch)))
                t_qnn = time_call(lambda: qnn(**batch), repeats=args.repeats)["median_s"]
                t_snn = time_call(lambda: snn(**batch), repeats=args.repeats)["median_s"]
            results[f"{name} / {coding}"] = {"native_s": native, "qnn_s": t_qnn, "snn_s": t_snn,
                                             "snn_over_qnn": t_snn / t_qnn, "identical_logits": same,
                                             "sites": len(snn.sites())}
            rows.append([name, coding, f"{1e3 * native:.0f}", f"{1e3 * t_qnn:.0f}", f"{1e3 * t_snn:.0f}",
                         f"{t_snn / t_qnn:.2f}", "yes" if same else "NO"])
            print(f"{name} {coding}: SNN {1e3 * t_snn:.0f} ms, QNN {1e3 * t_qnn:.0f} ms", flush=True)
    print_table(["model", "coding", "native (ms)", "QNN (ms)", "SNN (ms)", "SNN / QNN", "identical"], rows)
    print(f"written: {write_results('sites_speed', {'batch': '8 x 64 tokens', 'results': results})}")


def _logits(out) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


if __name__ == "__main__":
    main()
