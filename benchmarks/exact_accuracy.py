"""Task accuracy of an exact (gate-circuit) SNN against its ANN: the digits CNN on the whole
test split, plus ULP statistics of the logits.

    python benchmarks/exact_accuracy.py

Trains SmallCNN on scikit-learn digits (seed 0), converts it with isospike.exact.convert and
compares: accuracy (must be identical), bit equality with the pinned reference, ULP distance of
the logits to the native PyTorch model (next to the seed paper's mean 6.19). Writes
benchmarks/results/exact_accuracy.json.
"""

from __future__ import annotations

import time

import torch
from _common import print_table, write_results

import isospike as isp
from isospike.data import load_digits
from isospike.models import SmallCNN
from isospike.train import fit_classifier


def main() -> None:
    data = load_digits(seed=0)
    torch.manual_seed(0)
    ann = SmallCNN(input_size=8)
    fit_classifier(ann, data.train, epochs=30, seed=0)
    snn, ref = isp.exact.convert(ann), isp.exact.reference(ann)
    torch.set_grad_enabled(False)
    x, y = data.test.x, data.test.y
    t0 = time.perf_counter()
    logits_snn = torch.cat([snn(x[i:i + 50]) for i in range(0, len(x), 50)])
    seconds = time.perf_counter() - t0
    logits_ref = ref(x)
    with torch.no_grad():
        logits_ann = ann(x)
    acc_ann = int((logits_ann.argmax(1) == y).sum()) / len(y)
    acc_snn = int((logits_snn.argmax(1) == y).sum()) / len(y)
    same_pred = int((logits_snn.argmax(1) == logits_ann.argmax(1)).sum())
    u = isp.metrics.ulp_distance(logits_snn, logits_ann).flatten().double()
    bit_equal = torch.equal(logits_snn.view(torch.int32), logits_ref.view(torch.int32))
    print_table(["model", "test accuracy (%)", "predictions equal to ANN", "ULP vs ANN mean", "ULP max", "bit-identical to reference"],
                [["ANN (native)", f"{100 * acc_ann:.2f}", f"{len(y)}/{len(y)}", "-", "-", "-"],
                 ["exact SNN (gates)", f"{100 * acc_snn:.2f}", f"{same_pred}/{len(y)}", f"{u.mean():.2f}", int(u.max()), bit_equal]])
    print(f"\naccuracy change: {100 * (acc_snn - acc_ann):+.2f} points (seed paper: 0.00%, mean ULP 6.19 on Qwen3-0.6B);"
          f" {len(y)} images in {seconds:.1f} s through the gates")
    path = write_results("exact_accuracy", {
        "dataset": "digits test split", "images": len(y), "ann_accuracy": acc_ann, "snn_accuracy": acc_snn,
        "predictions_equal": same_pred, "logit_ulp_vs_ann": {"mean": float(u.mean()), "median": float(u.median()),
                                                            "max": int(u.max())},
        "bit_identical_to_reference": bit_equal, "seconds": seconds, "seed_mean_ulp": 6.19,
        "gate_evaluations_last_batch": snn.counts().gate_evaluations,
    })
    print(f"written: {path}")


if __name__ == "__main__":
    main()
