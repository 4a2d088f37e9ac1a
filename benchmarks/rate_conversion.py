"""Low-latency rate conversion: plain conversion, QCFS and noise-aware (NQ) training against
SpikingJelly 2.0's ann2snn, accuracy vs time steps, on real images.

    python benchmarks/rate_conversion.py                 # digits + Fashion-MNIST, ~25 minutes
    python benchmarks/rate_conversion.py --quick         # smaller budget, ~5 minutes
    python benchmarks/rate_conversion.py --datasets digits

For each dataset and model (SmallCNN, VGG-small): train a ReLU ANN; convert it with isospike
(99.9th-percentile thresholds, V(0) = theta/2) and with SpikingJelly's RateCodingRecipe (its
"99.9%" robust norm, and its channel-wise half-threshold variant, the closest it has to the QCFS
recipe); fine-tune the same ANN with QCFS activations (L = 4, no noise) and with noise-aware
activations (NQ), convert them (threshold = trained lambda). Accuracy at T = 1, 2, 4, 8, 16, 32
on the test split. CIFAR-10/100 are used when a local copy is present (ISOSPIKE_CIFAR).
Also times the plain SNN at T = 64 on 10,000 test images against SpikingJelly. Writes
benchmarks/results/rate_conversion.json, rate_conversion.png and rate_residual.png (residual
error of the NQ network vs the noise model it was trained with).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, print_table, write_results
from torch.utils.data import DataLoader, TensorDataset

import isospike as isp
from isospike.conversion.evaluation import evaluate_over_time
from isospike.conversion.rate_analysis import layer_gaps
from isospike.data import load_dataset
from isospike.errors import DatasetNotFoundError
from isospike.models import build
from isospike.train import accuracy, fit_classifier, noise_aware

TS = [1, 2, 4, 8, 16, 32]


def sj_available() -> bool:
    try:
        import spikingjelly.activation_based.ann2snn  # noqa: F401
    except ImportError:
        return False
    return True


@torch.no_grad()
def sj_evaluate(ann, calibration, data, timesteps: list[int], channel_wise: bool, batch: int = 500) -> tuple[list[float], float]:
    """SpikingJelly 2.0 ann2snn RateCodingRecipe(mode="99.9%"), simulated step by step."""
    from spikingjelly.activation_based import ann2snn, functional

    loader = DataLoader(TensorDataset(calibration, torch.zeros(len(calibration), dtype=torch.long)), batch_size=128)
    recipe = ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%", channel_wise=channel_wise,
                                      half_threshold=channel_wise)
    snn = ann2snn.FXConverter(recipe=recipe, device="cpu").convert(copy.deepcopy(ann).eval())
    t_max = max(timesteps)
    correct = np.zeros(t_max)
    t0 = time.perf_counter()
    for i in range(0, len(data.x), batch):
        x, y = data.x[i:i + batch], data.y[i:i + batch]
        functional.reset_net(snn)
        out = None
        for t in range(t_max):
            step = snn(x)
            out = step if out is None else out + step
            correct[t] += int((out.argmax(1) == y).sum())
    seconds = time.perf_counter() - t0
    return [correct[t - 1] / len(data.x) for t in timesteps], seconds


def run_case(dataset, model_name: str, budget: dict, rng_seed: int = 0) -> dict:
    torch.manual_seed(rng_seed)
    shape = dataset.input_shape
    model = build(model_name, in_channels=shape[0], num_classes=dataset.num_classes, input_size=shape[-1])
    train = dataset.train.subset(budget["train_samples"], seed=rng_seed)
    t0 = time.perf_counter()
    fit_classifier(model, train, epochs=budget["ann_epochs"], seed=rng_seed, progress=True, batch_size=128)
    ann_seconds = time.perf_counter() - t0
    test = dataset.test
    ann_acc = accuracy(model, test)
    calibration = train.x[:512]
    rows = {"ann": ann_acc}
    snn = isp.convert(model, coding="rate", timesteps=max(TS), calibration=calibration)
    rows["isospike_plain"] = [r.accuracy for r in evaluate_over_time(snn, test, TS)]
    if sj_available():
        rows["spikingjelly_99.9"], sj_s = sj_evaluate(model, calibration, test, TS, channel_wise=False)
        rows["spikingjelly_channelwise_half"], _ = sj_evaluate(model, calibration, test, TS, channel_wise=True)
    fine = {}
    for name, noise in (("qcfs", "none"), ("nq", "gaussian")):
        t0 = time.perf_counter()
        trained = noise_aware(model, train, epochs=budget["nq_epochs"], levels=4, noise=noise, seed=rng_seed)
        fine[name] = trained
        snn_q = isp.convert(trained, coding="rate", timesteps=max(TS))
        rows[f"{name}_ann"] = accuracy(trained, test)
        rows[name] = [r.accuracy for r in evaluate_over_time(snn_q, test, TS)]
        rows[f"{name}_train_seconds"] = time.perf_counter() - t0
        rows[f"{name}_sigma"] = trained.nq_history.epochs[trained.nq_history.best_epoch].sigma
        rows[f"{name}_lambda"] = trained.nq_history.epochs[trained.nq_history.best_epoch].lambdas
    rows["ann_train_seconds"] = ann_seconds
    rows["_models"] = fine
    return rows


def timing(dataset, model_name: str) -> dict:
    """Plain rate SNN, T = 64, 10,000 test images: isospike vs SpikingJelly (same ANN)."""
    torch.manual_seed(0)
    shape = dataset.input_shape
    model = build(model_name, in_channels=shape[0], num_classes=dataset.num_classes, input_size=shape[-1]).eval()
    test = dataset.test.subset(10_000)
    cal = dataset.train.x[:512]
    snn = isp.convert(model, coding="rate", timesteps=64, calibration=cal)
    t0 = time.perf_counter()
    evaluate_over_time(snn, test, [64])
    counted = time.perf_counter() - t0
    snn.set_counting(False)  # the same simulation without the per-layer event counts, as SpikingJelly runs
    t0 = time.perf_counter()
    evaluate_over_time(snn, test, [64])
    ours = time.perf_counter() - t0
    out = {"images": len(test), "timesteps": 64, "isospike_seconds": ours, "isospike_counting_seconds": counted}
    if sj_available():
        _, sj = sj_evaluate(model, cal, test, [64], channel_wise=False)
        out["spikingjelly_seconds"] = sj
        out["speedup"] = sj / ours
    return out


def plot(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    cases = list(results)
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4), squeeze=False)
    styles = {"isospike_plain": ("plain conversion (isospike)", "o-"), "spikingjelly_99.9": ("SpikingJelly 99.9%", "s--"),
              "spikingjelly_channelwise_half": ("SpikingJelly channel-wise, half thr.", "s:"),
              "qcfs": ("QCFS L=4 (isospike)", "^-"), "nq": ("noise-aware NQ L=4 (isospike)", "D-")}
    for ax, case in zip(axes[0], cases):
        r = results[case]
        for key, (label, style) in styles.items():
            if key in r:
                ax.plot(TS, [100 * a for a in r[key]], style, label=label)
        ax.axhline(100 * r["ann"], color="k", ls="--", lw=1, label=f"ReLU ANN {100 * r['ann']:.2f}%")
        ax.set_xscale("log", base=2)
        ax.set_xticks(TS, [str(t) for t in TS])
        ax.set_ylim(max(0, min(100 * min(min(r[k]) for k in styles if k in r), 100 * r["ann"]) - 5), 100)
        ax.set_xlabel("time steps T")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(case)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def plot_residual(model, dataset, path) -> dict:
    """Per layer of the NQ network: histogram of (ANN activation - SNN rate) at T = L = 4 on
    test images against N(0, sigma^2) of the trained noise model, and of v(T)/theta."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    snn = isp.convert(model, coding="rate", timesteps=4)
    gaps = layer_gaps(model, snn, dataset.test.x[:1000], timesteps=4)
    sigma = model.nq_history.epochs[model.nq_history.best_epoch].sigma
    fig, axes = plt.subplots(2, len(gaps), figsize=(3.2 * len(gaps), 5.5), squeeze=False)
    summary = {}
    for k, (p, g) in enumerate(gaps.items()):
        gap = g.gap.numpy()
        s = sigma.get(p, 0.0)
        ax = axes[0, k]
        lo, hi = np.percentile(gap, [0.5, 99.5])
        span = max(hi - lo, 1e-3)
        bins = np.linspace(lo - 0.1 * span, hi + 0.1 * span, 60)
        ax.hist(gap, bins=bins, density=True, alpha=0.7, label="measured gap")
        if s > 0:
            xs = np.linspace(bins[0], bins[-1], 200)
            ax.plot(xs, np.exp(-xs ** 2 / (2 * s * s)) / (s * np.sqrt(2 * np.pi)), "r-", label=f"N(0, {s:.3f}^2)")
        ax.set_yscale("log")
        ax.set_title(f"layer {p}: a - r", fontsize=9)
        ax.legend(fontsize=7)
        res = g.residual.numpy()
        axes[1, k].hist(res, bins=60, color="tab:green", alpha=0.8)
        axes[1, k].axvspan(0, 1, color="k", alpha=0.08)
        axes[1, k].set_title(f"layer {p}: v(T)/theta", fontsize=9)
        axes[1, k].set_yscale("log")
        summary[p] = {"gap_mean": float(gap.mean()), "gap_std": float(gap.std()), "trained_sigma": s,
                      "fraction_exact": float((np.abs(gap) < 1e-6).mean()),
                      "residual_outside_0_1": float(((res < 0) | (res >= 1)).mean())}
    fig.suptitle("NQ network, T = L = 4: residual error per layer (top) vs its noise model; residual membrane (bottom)")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="digits,fashion-mnist,cifar10")
    ap.add_argument("--models", default="small-cnn,vgg-small")
    ap.add_argument("--quick", action="store_true", help="smaller training budget")
    ap.add_argument("--only-timing", action="store_true",
                    help="re-measure the speed comparison only and update it in the existing JSON")
    args = ap.parse_args()
    if args.only_timing:
        import json

        path = RESULTS / "rate_conversion.json"
        data = json.loads(path.read_text())
        for ds_name in args.datasets.split(","):
            if ds_name == "fashion-mnist":
                data["timing"][f"{ds_name} / small-cnn"] = t = timing(load_dataset(ds_name), "small-cnn")
                print(f"{ds_name}: isospike {t['isospike_seconds']:.1f} s (with counts {t['isospike_counting_seconds']:.1f} s)"
                      f", SpikingJelly {t.get('spikingjelly_seconds', float('nan')):.1f} s")
        data.pop("benchmark", None)
        data.pop("machine", None)
        print(f"written: {write_results('rate_conversion', data)}")
        return
    budgets = {
        "digits": {"train_samples": 10**9, "ann_epochs": 30, "nq_epochs": 10},
        "fashion-mnist": {"train_samples": 60000, "ann_epochs": 6, "nq_epochs": 4},
        "cifar10": {"train_samples": 50000, "ann_epochs": 10, "nq_epochs": 4},
    }
    if args.quick:
        budgets["fashion-mnist"] = {"train_samples": 15000, "ann_epochs": 3, "nq_epochs": 2}
        budgets["cifar10"] = {"train_samples": 10000, "ann_epochs": 3, "nq_epochs": 2}
    results, residual, times = {}, {}, {}

    def save() -> Path:  # after every case, so an interrupted run keeps what it measured
        if results:
            plot(results, RESULTS / "rate_conversion.png")
        return write_results("rate_conversion", {"timesteps": TS, "results": results, "residual_error": residual,
                                                 "timing": times, "budgets": budgets, "quick": args.quick})

    for ds_name in args.datasets.split(","):
        try:
            ds = load_dataset(ds_name)
        except DatasetNotFoundError as exc:
            print(f"skipping {ds_name}: {exc}")
            continue
        for model_name in args.models.split(","):
            key = f"{ds_name} / {model_name}"
            print(f"== {key}")
            r = run_case(ds, model_name, budgets[ds_name])
            models = r.pop("_models")
            results[key] = r
            if ds_name == "fashion-mnist" and model_name == "small-cnn":
                residual[key] = plot_residual(models["nq"], ds, RESULTS / "rate_residual.png")
                times[key] = timing(ds, model_name)
            save()
    rows = []
    for key, r in results.items():
        for label, k in (("ANN (ReLU)", None), ("isospike plain", "isospike_plain"), ("SpikingJelly 99.9%", "spikingjelly_99.9"),
                         ("SpikingJelly ch-wise half", "spikingjelly_channelwise_half"), ("QCFS L=4", "qcfs"), ("NQ L=4", "nq")):
            if k is None:
                rows.append([key, label, "-"] + [f"{100 * r['ann']:.2f}"] * len(TS))
            elif k in r:
                ann = f"{100 * r[k + '_ann']:.2f}" if k + "_ann" in r else "-"
                rows.append([key, label, ann] + [f"{100 * a:.2f}" for a in r[k]])
    print_table(["case", "method", "its ANN"] + [f"T={t}" for t in TS], rows)
    for key, t in times.items():
        msg = (f"\nspeed, {key}, plain SNN T=64 on {t['images']} images: isospike {t['isospike_seconds']:.1f} s "
               f"({t['isospike_counting_seconds']:.1f} s with event counts)")
        if "spikingjelly_seconds" in t:
            msg += f", SpikingJelly {t['spikingjelly_seconds']:.1f} s ({t['speedup']:.1f}x)"
        print(msg)
    print(f"written: {save()}")


if __name__ == "__main__":
    main()
