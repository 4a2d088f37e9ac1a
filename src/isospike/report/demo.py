"""`isospike demo`: train a small CNN on the embedded digits data, convert it under every coding
(rate, TTFS, M-TTFS with and without a dead zone, sigma-delta) and to exact gate circuits, verify
each, estimate its energy, sweep the rate SNN over time steps, and write report.html + report.md
with plots and results.json."""

from __future__ import annotations

import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

import isospike
from isospike._io import atomic_savefig, atomic_write_json
from isospike.conversion import SpikingNetwork, convert
from isospike.conversion.evaluation import TimestepEvaluation, evaluate_over_time
from isospike.data import load_digits
from isospike.guarantees import BIT_EXACT
from isospike.models import SmallCNN
from isospike.tables import text_table
from isospike.train import accuracy, fit_classifier
from isospike.train.nq import save_trained

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


@dataclass
class CodingRow:
    """One coding of the demo network: accuracy, activity, certificate and energy."""

    coding: str
    timesteps: int
    accuracy: float
    samples: int
    spikes_per_sample: float
    certificate_holds: bool
    certificate: str
    guarantees: str
    energy_nj: dict[str, float]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def network_file_name(label: str) -> str:
    """The file a demo coding's network is saved to: ``rate.safetensors``,
    ``mttfs-dead-zone-2.safetensors``."""
    return label.replace(" (dead zone ", "-dead-zone-").replace(")", "").replace(" ", "-") + ".safetensors"


def compare_codings(model: torch.nn.Module, data, samples: int, exact_samples: int, progress: bool = True,
                    echo=print, save_dir: Path | None = None) -> list[CodingRow]:
    """Convert ``model`` under every coding (and to exact gate circuits), then measure, certify and
    price each on the same test images; with ``save_dir``, save each network there
    (``isospike.save``, one ``<coding>.safetensors`` each, atomically)."""
    from tqdm.auto import tqdm

    import isospike as isp

    x, y = data.test.x[:samples], data.test.y[:samples]
    cal = data.train.x[:512]
    settings = [("rate", dict(timesteps=8)), ("ttfs", dict(timesteps=15)), ("mttfs", dict(timesteps=15)),
                ("mttfs", dict(timesteps=15, dead_zone=2)), ("sigma_delta", dict(levels=16)), ("exact", {})]
    rows = []
    for coding, kw in tqdm(settings, desc="codings", disable=not progress):
        label = coding + (f" (dead zone {kw['dead_zone']})" if kw.get("dead_zone") else "")
        spec = isp.conversion.get_coding(coding)
        snn = isp.convert(model, coding=coding, calibration=cal, **kw)
        if save_dir is not None:
            isp.save(snn, save_dir / network_file_name(label))
        # codings slow to simulate (gate circuits) run on the first images, where the certificate
        # checks them; with a bit-exact guarantee the accuracy over the whole split is their
        # equivalent's (the same outputs, bit for bit)
        slow = spec.simulation_samples is not None
        n = min(len(x), exact_samples) if slow else len(x)
        res = isp.simulate(snn, x[:n])
        cert = isp.verify(snn, x[: min(n, 64)])
        out = res.output
        if n < len(x) and spec.guarantee == BIT_EXACT:
            with torch.no_grad():
                out = isp.equivalent(snn)(x)
        acc, spikes, T = float((out.argmax(-1) == y[: len(out)]).float().mean()), res.spikes_per_sample, res.timesteps
        xs, energy_in = x[: len(out)], x[: 1 if slow else min(n, 64)]
        energy = {hw: 1e9 * isp.energy.estimate(snn, energy_in, hardware=hw).total_j for hw in ("horowitz45", "loihi")}
        kinds = sorted({c.guarantee for c in cert.layers})
        rows.append(CodingRow(label, T, acc, len(xs), spikes, cert.holds, cert.summary(), ", ".join(kinds), energy))
    ann_energy = {hw: 1e9 * isp.energy.estimate(model, x[:64], hardware=hw).total_j for hw in ("horowitz45", "loihi")}
    rows.append(CodingRow("ANN (no spikes)", 1, accuracy(model, (x, y)), len(x), 0.0, True, "-", "-", ann_energy))
    return rows


def plot_codings(rows: Sequence[CodingRow], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for r, marker in zip(rows, "osD^vPX*"):
        ax.scatter(r.energy_nj["horowitz45"], 100 * r.accuracy, s=60, marker=marker, label=r.coding)
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference on horowitz45 (nJ, compute + data movement)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("one network, every coding")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
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
    exact_samples: int = 16,
    command: str | None = None,
) -> DemoResult:
    """Run the whole pipeline on the embedded digits data: train, convert with every coding,
    verify, estimate energy; write ``report.html``, ``report.md``, plots and ``results.json`` in
    ``out_dir``. Returns the measured numbers. ``command``: the command line to record (default:
    ``sys.argv``)."""
    from isospike.report.document import Document, provenance_record

    start = time.perf_counter()
    out = Path(out_dir)
    torch.manual_seed(seed)
    data = load_digits(seed=seed)
    echo(f"data: digits (scikit-learn), {len(data.train)} train / {len(data.test)} test images of 8x8")
    model = SmallCNN(in_channels=1, num_classes=10, input_size=8)
    fit_classifier(model, data.train, epochs=epochs, seed=seed, progress=progress)
    model.eval()
    ann_acc = accuracy(model, data.test)
    n_params = sum(p.numel() for p in model.parameters())
    echo(f"ANN (SmallCNN, {n_params} parameters): test accuracy {100 * ann_acc:.2f}%")
    # the trained ANN in the folder format of `isospike train`: `isospike convert/energy/sweep --model
    # <out>/model` (and their default when <out> is runs/demo) reuse it instead of training again
    save_trained(out / "model", model, {"model": "small-cnn", "kwargs": {"in_channels": 1, "num_classes": 10,
                                                                         "input_size": 8}, "levels": None,
                                        "dataset": "digits"})

    snn = convert(model, coding="rate", timesteps=max(timesteps), calibration=data.train.x[:512])
    assert isinstance(snn, SpikingNetwork)  # the rate coding builds a SpikingNetwork
    rows = evaluate_over_time(snn, data.test, timesteps, progress=progress)
    headers = ["T", "ANN acc (%)", "SNN acc (%)", "spikes / sample", "synaptic ops / sample"]
    table = [[r.timesteps, 100 * ann_acc, 100 * r.accuracy, r.spikes_per_sample, r.synaptic_ops_per_sample] for r in rows]
    echo("")
    echo(text_table(headers, table))
    plot_path = plot_accuracy_vs_timesteps(
        rows, ann_acc, out / "accuracy_vs_timesteps.png", "digits SmallCNN, rate coding (IF, reset by subtraction)"
    )

    echo("\nevery coding on the same network (energy per inference, nJ):")
    coding_rows = compare_codings(model, data, len(data.test), exact_samples, progress, echo, save_dir=out / "snn")
    c_headers = ["coding", "T", "accuracy (%)", "samples", "spikes / sample", "guarantee", "verified",
                 "horowitz45 (nJ)", "loihi (nJ)"]
    c_table = [[r.coding, r.timesteps, 100 * r.accuracy, r.samples, r.spikes_per_sample, r.guarantees,
                r.certificate, r.energy_nj["horowitz45"], r.energy_nj["loihi"]] for r in coding_rows]
    echo(text_table(c_headers, c_table))
    codings_plot = plot_codings(coding_rows, out / "codings.png")

    seconds = time.perf_counter() - start
    versions = f"isospike {isospike.__version__}, torch {torch.__version__}, Python {platform.python_version()}"
    if command is None:
        command = "isospike " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["demo"] else "isospike demo"
    doc = Document("isospike demo: one network, every spiking coding")
    doc.paragraph(f"Run time {seconds:.1f} s, seed {seed}.")
    doc.heading("Model and data")
    doc.bullets([
        f"Data: scikit-learn digits, {len(data.train)} training / {len(data.test)} test images (8x8), stratified split, "
        f"seed {seed}.",
        f"ANN: SmallCNN ({n_params} parameters), {epochs} epochs AdamW; test accuracy **{100 * ann_acc:.2f}%**.",
        "Conversion: `isospike.convert(model, coding=..., calibration=512 training images)`; exact: "
        "`isospike.exact.convert(model)` (IEEE-754 float32 arithmetic from IF-neuron threshold gates).",
    ])
    doc.heading("Every coding on the same network")
    doc.paragraph(f"Accuracy on the test split (exact circuits: simulated on the first {exact_samples} images, which the "
                  "certificate checks bit for bit against the pinned float32 reference; the accuracy shown is that "
                  "reference's over the whole split), "
                  "spikes per image, the guarantee `isospike.verify` checks for each layer and whether it held, and the "
                  "energy per inference from `isospike.energy.estimate` (compute + data movement + communication).")
    doc.table(c_headers, c_table)
    doc.paragraph("Guarantees: **bit-exact** -- every gate-circuit layer equals the pinned float32 reference bit for bit; "
                  "**qnn-equivalent** -- every population's output equals the quantized network `isospike.equivalent` "
                  "returns; **bounded-error** -- a rate neuron fed by spikes is within max(v_init, theta - v_init) / T of "
                  "its mean input current only if its membrane ends inside [0, theta): neurons whose inputs arrive "
                  "unevenly break it, and the table gives the share that keep it (the residual error seed 001's "
                  "noise-aware training targets).")
    doc.image("codings.png", "accuracy against energy per inference, every coding")
    doc.heading("Rate coding: accuracy and activity against time steps")
    doc.paragraph("IF neurons, reset by subtraction, threshold = "
                  f"{snn.info['percentile']}th percentile of each ReLU on 512 training images, membrane starting at "
                  "theta/2, BatchNorm folded, analog input at every step, output = time-averaged logits.")
    doc.table(headers, table)
    doc.image("accuracy_vs_timesteps.png", "accuracy vs time steps")
    doc.paragraph("Thresholds per layer: " + ", ".join(f"`{k}` {v:.3f}" for k, v in snn.info["thresholds"].items()))
    doc.heading("Saved networks, reused by the other commands")
    saved = sorted(p.name for p in (out / "snn").glob("*.safetensors"))
    doc.bullets([
        f"`{out / 'model'}`: the trained ANN (`model.json` + `weights.safetensors`, the folder format of `isospike "
        f"train`); `isospike convert/energy/sweep --model {out / 'model'}` convert it without training again (their "
        "default when this folder is `runs/demo`).",
        f"`{out / 'snn'}/`: every converted network, saved with `isospike.save` ({', '.join(f'`{n}`' for n in saved)}); "
        f"`isospike.load(path)` rebuilds one, `isospike verify --model {out / 'snn' / 'rate.safetensors'}` certifies "
        "it and `isospike energy --model ...` prices it as it is.",
    ])
    doc.provenance(command)
    report_path, html_path = doc.write(out)
    atomic_write_json(out / "results.json", {
        "dataset": "digits", "seed": seed, "epochs": epochs, "ann_accuracy": ann_acc,
        "rows": [r.as_dict() for r in rows], "codings": [r.as_dict() for r in coding_rows],
        "thresholds": snn.info["thresholds"], "versions": versions, "provenance": provenance_record(command),
    })
    echo("")
    echo(f"report: {html_path} (and {report_path.name})")
    echo(f"plots:  {plot_path}, {codings_plot}")
    echo(f"saved:  {out / 'model'} (the ANN), {out / 'snn'}/<coding>.safetensors (the converted networks); reuse them "
         f"with --model, e.g. `isospike convert --model {out / 'model'} --coding ttfs`")
    return DemoResult(ann_acc, rows, report_path, plot_path, seconds)
