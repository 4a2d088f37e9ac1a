"""`isospike demo`: train a small CNN on the embedded digits data, convert it to a rate-coded
SNN, measure accuracy and spikes against the number of time steps, and write a report."""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

import isospike
from isospike._io import atomic_savefig, atomic_write_json, atomic_write_text
from isospike.conversion import convert
from isospike.conversion.evaluation import TimestepEvaluation, evaluate_over_time
from isospike.data import load_digits
from isospike.models import SmallCNN
from isospike.report.tables import markdown_table, text_table
from isospike.train import accuracy, fit_classifier

DEFAULT_TIMESTEPS = (1, 2, 4, 8, 16, 32)


@dataclass
class DemoResult:
    ann_accuracy: float
    rows: list[TimestepEvaluation]
    report_path: Path
    plot_path: Path
    seconds: float


def plot_accuracy_vs_timesteps(rows: Sequence[TimestepEvaluation], ann_accuracy: float, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [r.timesteps for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ts, [100 * r.accuracy for r in rows], "o-", label="rate-coded SNN")
    ax1.axhline(100 * ann_accuracy, color="k", ls="--", label=f"ANN ({100 * ann_accuracy:.2f}%)")
    ax1.set_xscale("log", base=2)
    ax1.set_xticks(ts, [str(t) for t in ts])
    ax1.set_xlabel("time steps T")
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("accuracy vs time steps")
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower right")
    ax2.plot(ts, [r.spikes_per_sample for r in rows], "s-", color="tab:red")
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xticks(ts, [str(t) for t in ts])
    ax2.set_xlabel("time steps T")
    ax2.set_ylabel("spikes per sample")
    ax2.set_title("spiking activity")
    ax2.grid(alpha=0.3, which="both")
    fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return path


def run_demo(
    out_dir: str | Path = "runs/demo",
    timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
    epochs: int = 30,
    seed: int = 0,
    progress: bool = True,
    echo=print,
) -> DemoResult:
    """Run the whole demo and write ``report.md``, ``accuracy_vs_timesteps.png`` and
    ``results.json`` in ``out_dir``. Returns the measured numbers."""
    start = time.perf_counter()
    out = Path(out_dir)
    torch.manual_seed(seed)
    data = load_digits(seed=seed)
    echo(f"data: digits (scikit-learn), {len(data.train)} train / {len(data.test)} test images of 8x8")
    model = SmallCNN(in_channels=1, num_classes=10, input_size=8)
    fit_classifier(model, data.train, epochs=epochs, seed=seed, progress=progress)
    ann_acc = accuracy(model, data.test)
    echo(f"ANN (SmallCNN, {sum(p.numel() for p in model.parameters())} parameters): test accuracy {100 * ann_acc:.2f}%")

    snn = convert(model, coding="rate", timesteps=max(timesteps), calibration=data.train.x[:512])
    rows = evaluate_over_time(snn, data.test, timesteps, progress=progress)

    headers = ["T", "ANN acc (%)", "SNN acc (%)", "spikes / sample", "synaptic ops / sample"]
    table = [[r.timesteps, 100 * ann_acc, 100 * r.accuracy, r.spikes_per_sample, r.synaptic_ops_per_sample] for r in rows]
    echo("")
    echo(text_table(headers, table))

    plot_path = plot_accuracy_vs_timesteps(
        rows, ann_acc, out / "accuracy_vs_timesteps.png", "digits SmallCNN, rate coding (IF, reset by subtraction)"
    )
    seconds = time.perf_counter() - start
    versions = f"isospike {isospike.__version__}, torch {torch.__version__}, Python {platform.python_version()}"
    command = "isospike demo " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 and sys.argv[1] == "demo" else "isospike demo"
    report = "\n".join([
        "# isospike demo: rate-coded SNN on digits",
        "",
        f"Command: `{command}`  ",
        f"Versions: {versions}  ",
        f"Seed: {seed}; run time: {seconds:.1f} s",
        "",
        "## Model and data",
        f"- Data: scikit-learn digits, {len(data.train)} training / {len(data.test)} test images (8x8), stratified split, seed {seed}.",
        f"- ANN: SmallCNN ({sum(p.numel() for p in model.parameters())} parameters), {epochs} epochs AdamW; test accuracy **{100 * ann_acc:.2f}%**.",
        "- Conversion: `isospike.convert(model, coding=\"rate\", ...)`: ReLU -> IF neurons, reset by subtraction, "
        f"threshold = {snn.info['percentile']}th percentile of the ReLU's activations on 512 training images, "
        "membrane starts at theta/2, BatchNorm folded, analog input at every step, output = time-averaged logits.",
        "",
        "## Accuracy and activity against time steps",
        "",
        markdown_table(headers, table),
        "",
        "![accuracy vs time steps](accuracy_vs_timesteps.png)",
        "",
        "Thresholds per layer: " + ", ".join(f"`{k}` {v:.3f}" for k, v in snn.info["thresholds"].items()),
        "",
    ])
    report_path = atomic_write_text(out / "report.md", report)
    atomic_write_json(out / "results.json", {
        "dataset": "digits", "seed": seed, "epochs": epochs, "ann_accuracy": ann_acc,
        "rows": [r.as_dict() for r in rows], "thresholds": snn.info["thresholds"], "versions": versions,
    })
    echo("")
    echo(f"report: {report_path}")
    echo(f"plot:   {plot_path}")
    return DemoResult(ann_acc, rows, report_path, plot_path, seconds)
