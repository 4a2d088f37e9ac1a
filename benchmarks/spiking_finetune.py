"""Fine-tuning converted rate networks through their spiking forward pass (surrogate gradients,
backpropagation through the T steps) at low T, beside noise-aware (NQ) training.

    python benchmarks/spiking_finetune.py --reuse        # Fashion-MNIST SmallCNN, ~40 min on 2 quiet cores

The ANN and the NQ network are those of benchmarks/rate_conversion.py (same recipe, budget, seed
and cache folder: with --reuse a finished rate_conversion run is taken as it is). For T = 2 and
T = 4: the plain conversion (99.9th-percentile thresholds) and the NQ network's conversion, each
before and after ``isospike.train.finetune_spiking`` (one epoch on a fixed subset of the training
split, AdamW, cosine decay; thresholds fixed). Accuracy on the 10,000 test images. Every stage is
cached (--reuse). Writes benchmarks/results/spiking_finetune.json and spiking_finetune.png.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time

import torch
from _common import RESULTS, print_table, write_results
from rate_conversion import CACHE, Stages, train_ann

import isospike as isp
from isospike.data import load_dataset
from isospike.models import build
from isospike.train import accuracy, finetune_spiking, noise_aware

TS = (2, 4)
# rate_conversion.py's Fashion-MNIST budget and seed: the same ANN and NQ network, the same cache folder
BUDGET = {"train_samples": 60000, "ann_epochs": 6, "nq_epochs": 4}
SEED = 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reuse", action="store_true", help="take finished stages (and rate_conversion's models) from the cache")
    ap.add_argument("--finetune-samples", type=int, default=20000, help="training images for the spiking fine-tuning")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of spiking fine-tuning")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--replot", action="store_true", help="redraw the plot from the results JSON and exit")
    args = ap.parse_args()
    if args.replot:
        plot(json.loads((RESULTS / "spiking_finetune.json").read_text())["results"], RESULTS / "spiking_finetune.png")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset("fashion-mnist")
    config = {"dataset": dataset.name, "model": "small-cnn", "budget": BUDGET, "seed": SEED, "normalised": False,
              "test_samples": None}  # rate_conversion.run_case's config for this case: the same digest
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    directory = CACHE / f"{dataset.name}-small-cnn-{digest}"
    stages = Stages(directory / "spiking_finetune", args.reuse)
    torch.manual_seed(SEED)
    shape = dataset.input_shape
    model = build("small-cnn", in_channels=shape[0], num_classes=dataset.num_classes, input_size=shape[-1])
    train = dataset.train.subset(BUDGET["train_samples"], seed=SEED)
    test = dataset.test
    t0 = time.perf_counter()
    train_ann(model, train, epochs=BUDGET["ann_epochs"], seed=SEED, directory=directory, resume=args.reuse)
    nq = noise_aware(model, train, epochs=BUDGET["nq_epochs"], levels=4, noise="gaussian", seed=SEED,
                     checkpoint_dir=directory / "nq", resume=args.reuse)
    print(f"models ready in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    tune = train.subset(args.finetune_samples, seed=1)
    recipe = {"samples": len(tune), "epochs": args.epochs, "lr": args.lr, "batch_size": 64, "optimizer": "AdamW, cosine",
              "weight_decay": 0.0, "thresholds": "fixed (conversion's)"}
    key = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
    rows: dict = {"ann": stages.get("ann") or accuracy(model, test), "nq_ann": stages.get("nq_ann") or accuracy(nq, test)}
    stages.put("ann", rows["ann"])
    stages.put("nq_ann", rows["nq_ann"])
    for T in TS:
        for name, source, kwargs in (("plain", model, {"calibration": train.x[:512]}), ("nq", nq, {})):
            label = f"{name}/T{T}"
            hit = stages.get(f"{label}/{key}")
            if hit is None:
                snn = isp.convert(source, coding="rate", timesteps=T, **kwargs)
                before = accuracy(snn, test)
                tuned = copy.deepcopy(snn)
                t1 = time.perf_counter()
                history = finetune_spiking(tuned, tune, epochs=args.epochs, lr=args.lr, seed=SEED)
                hit = {"before": before, "after": accuracy(tuned, test), "seconds": time.perf_counter() - t1,
                       "train_loss": history.train_loss}
                stages.put(f"{label}/{key}", hit)
            rows[label] = hit
            print(f"{label}: {100 * hit['before']:.2f}% -> {100 * hit['after']:.2f}% after spiking fine-tuning "
                  f"({hit['seconds'] / 60:.1f} min)", flush=True)
    table = [[f"T={T}", name, f"{100 * rows[f'{name}/T{T}']['before']:.2f}", f"{100 * rows[f'{name}/T{T}']['after']:.2f}",
              f"{100 * (rows[f'{name}/T{T}']['after'] - rows[f'{name}/T{T}']['before']):+.2f}"]
             for T in TS for name in ("plain", "nq")]
    print(f"\nFashion-MNIST SmallCNN: ANN {100 * rows['ann']:.2f}%, NQ ANN {100 * rows['nq_ann']:.2f}%")
    print_table(["T", "conversion", "before (%)", "after spiking fine-tuning (%)", "change"], table)
    plot(rows, RESULTS / "spiking_finetune.png")
    print(f"written: {write_results('spiking_finetune', {'dataset': 'fashion-mnist', 'model': 'small-cnn', 'recipe': recipe, 'results': rows})}")


def plot(rows: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    width = 0.2
    for i, (name, colour) in enumerate((("plain", "tab:blue"), ("nq", "tab:red"))):
        for j, stage in enumerate(("before", "after")):
            xs = [k + (2 * i + j - 1.5) * width for k in range(len(TS))]
            ax.bar(xs, [100 * rows[f"{name}/T{T}"][stage] for T in TS], width, color=colour, alpha=0.45 if j == 0 else 0.95,
                   label=f"{'plain' if name == 'plain' else 'NQ'} conversion{' + spiking fine-tuning' if j else ''}")
    ax.axhline(100 * rows["ann"], color="k", ls="--", lw=1, label=f"ReLU ANN {100 * rows['ann']:.2f}%")
    ax.set_xticks(range(len(TS)), [f"T = {T}" for T in TS])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(40, 100)
    ax.set_title("Fashion-MNIST SmallCNN: rate SNNs at low T")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)  # below: no bar hidden
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
