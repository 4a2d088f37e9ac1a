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


def _threshold_name(ann: torch.nn.Module, snn: torch.nn.Module, path: str) -> str:
    """A population named by its layer path, e.g. "`2` (ReLU -> IF neurons, fed by `0` Conv2d)"."""
    from isospike.layer_names import describe_layer

    names = dict(ann.named_modules())
    was = type(names[path]).__name__ if path in names else "activation"
    keys = list(names)
    feeder = ""
    if path in names:  # the nearest layer with weights before it, in registration order
        for k in reversed(keys[: keys.index(path)]):
            if isinstance(names[k], (torch.nn.Linear, torch.nn.modules.conv._ConvNd)):
                feeder = f", fed by `{k}` {type(names[k]).__name__}"
                break
    return f"`{path}` ({was} -> {describe_layer(snn, path) or 'neurons'}{feeder})"


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
    # the SNN's points drawn over the ANN's line (they meet it at large T)
    ax1.plot(ts, [100 * r.accuracy for r in rows], "o-", label="rate-coded SNN", zorder=3)
    ax1.axhline(100 * ann_accuracy, color="k", ls="--", lw=1, label=f"ANN ({100 * ann_accuracy:.2f}%)", zorder=2)
    ax1.set_xscale("log", base=2)
    ax1.set_xlim(min(ts) / 1.25, max(ts) * 1.25)
    ax1.set_xticks(ts, [str(t) for t in ts])
    ax1.set_xlabel("time steps T")
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("accuracy vs time steps")
    ax1.grid(alpha=0.3)
    accs = [100 * r.accuracy for r in rows] + [100 * ann_accuracy]
    ax1.set_ylim(max(0.0, min(accs) - 5), min(102.0, max(accs) + 3))  # the ANN line off the frame
    # below the axes: the legend hides no point whatever the curve does
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=9, frameon=False)
    spikes = [r.spikes_per_sample for r in rows]
    ax2.plot(ts, spikes, "s-", color="tab:red")
    ax2.set_xscale("log", base=2)
    ax2.set_xlim(min(ts) / 1.25, max(ts) * 1.25)
    ax2.set_yscale("log")
    ax2.set_xticks(ts, [str(t) for t in ts])
    ax2.set_xlabel("time steps T")
    ax2.set_ylabel("spikes per sample")
    ax2.set_title("spiking activity")
    ax2.grid(alpha=0.3, which="both")
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax2.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax2.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    if min(spikes) > 0:
        ax2.set_ylim(min(spikes) / 1.4, max(spikes) * 1.4)  # no point on the frame
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
    samples: int  # images the accuracy is measured on
    simulated: int  # images simulated as spikes (spikes per sample come from these)
    certified: int  # images isospike.verify checked
    energy_samples: int  # images the energy estimate ran
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
        rows.append(CodingRow(label, T, acc, len(xs), n, cert.samples, len(energy_in), spikes, cert.holds,
                              cert.summary(), ", ".join(kinds), energy))
    ann_in = x[:64]
    ann_energy = {hw: 1e9 * isp.energy.estimate(model, ann_in, hardware=hw).total_j for hw in ("horowitz45", "loihi")}
    rows.append(CodingRow("ANN (no spikes)", 1, accuracy(model, (x, y)), len(x), 0, 0, len(ann_in), 0.0, True, "-",
                          "-", ann_energy))
    return rows


def coinciding(rows: Sequence[CodingRow], rel_energy: float = 0.01, accuracy: float = 0.001) -> list[list[str]]:
    """Groups of codings whose points in the accuracy-energy plot coincide (energy within 1%,
    accuracy within 0.1 percentage points): each group is drawn as one point and named in the
    caption."""
    groups: list[list[CodingRow]] = []
    for r in rows:
        for g in groups:
            e0, e1 = g[0].energy_nj["horowitz45"], r.energy_nj["horowitz45"]
            if abs(e1 - e0) <= rel_energy * max(abs(e0), abs(e1), 1e-30) and abs(g[0].accuracy - r.accuracy) <= accuracy:
                g.append(r)
                break
        else:
            groups.append([r])
    return [[r.coding for r in g] for g in groups]


def plot_codings(rows: Sequence[CodingRow], path: Path) -> tuple[Path, list[list[str]]]:
    """Accuracy against energy, one point per coding; codings whose points coincide are drawn as
    one point labelled with all their names. Returns the path and the groups of more than one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = coinciding(rows)
    by_name = {r.coding: r for r in rows}
    fig, ax = plt.subplots(figsize=(9, 4.4))
    for names, marker in zip(groups, "osD^vPX*hp"):
        r = by_name[names[0]]
        label = " = ".join(names) + (" (same point)" if len(names) > 1 else "")
        ax.scatter(r.energy_nj["horowitz45"], 100 * r.accuracy, s=70, marker=marker, label=label, zorder=3,
                   edgecolors="k", linewidths=0.5)
    ax.set_xscale("log")
    accs = [100 * r.accuracy for r in rows]
    pad = max(0.5, 0.08 * (max(accs) - min(accs)))
    ax.set_ylim(min(accs) - pad, max(accs) + pad)  # no point on the frame
    energies = [r.energy_nj["horowitz45"] for r in rows]
    ax.set_xlim(min(energies) / 1.6, max(energies) * 1.6)
    ax.set_xlabel("energy per inference on horowitz45 (nJ, compute + data movement)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("one network, every coding")
    ax.grid(alpha=0.3, which="both")
    # outside the axes: the legend hides no point
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="coding", title_fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return path, [g for g in groups if len(g) > 1]


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
    c_headers = ["coding", "T", "accuracy (%)", "accuracy on", "simulated", "spikes / sample", "guarantee",
                 "verified (images)", "certificate", "horowitz45 (nJ)", "loihi (nJ)"]
    c_table = [[r.coding, r.timesteps, 100 * r.accuracy, r.samples, r.simulated or "-", r.spikes_per_sample,
                r.guarantees, r.certified or "-", r.certificate, r.energy_nj["horowitz45"], r.energy_nj["loihi"]]
               for r in coding_rows]
    echo(text_table(c_headers, c_table))
    codings_plot, same_points = plot_codings(coding_rows, out / "codings.png")

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
    energy_counts = sorted({r.energy_samples for r in coding_rows})
    doc.paragraph(f"Accuracy on the test split (**accuracy on**: images counted; **simulated**: images run as spikes, "
                  f"which the spikes per image come from -- the exact circuits run on the first {exact_samples}, which the "
                  "certificate checks bit for bit against the pinned float32 reference, so their accuracy is that "
                  "reference's over the whole split), the guarantee `isospike.verify` checks for each layer on the "
                  "**verified** images and its **certificate**, and the energy per inference from "
                  "`isospike.energy.estimate` (compute + data movement + communication; on the first "
                  f"{' or '.join(str(c) for c in energy_counts)} images: 1 for the exact circuits, 64 otherwise).")
    doc.table(c_headers, c_table)
    doc.paragraph("Guarantees: **bit-exact** -- every gate-circuit layer equals the pinned float32 reference bit for bit; "
                  "**qnn-equivalent** -- every population's output equals the quantized network `isospike.equivalent` "
                  "returns; **bounded-error** -- a rate neuron fed by spikes is within max(v_init, theta - v_init) / T of "
                  "its mean input current only if its membrane ends inside [0, theta): neurons whose inputs arrive "
                  "unevenly break it, and the table gives the share that keep it (the residual error seed 001's "
                  "noise-aware training targets). A rate row reading **bounded error: x% within** is that "
                  "statistical certificate -- its qnn-equivalent layers held exactly -- not a failed conversion.")
    caption = "accuracy against energy per inference, every coding"
    if same_points:
        caption += "; " + "; ".join(" and ".join(g) + " give the same point (same accuracy and energy)"
                                    for g in same_points)
    doc.image("codings.png", caption)
    if same_points:
        doc.paragraph("In the plot, " + "; ".join(" and ".join(f"`{c}`" for c in g) + " coincide" for g in same_points)
                      + ": they are drawn as one point, labelled with every name.")
    doc.heading("Rate coding: accuracy and activity against time steps")
    doc.paragraph("IF neurons, reset by subtraction, threshold = "
                  f"{snn.info['percentile']}th percentile of each ReLU on 512 training images, membrane starting at "
                  "theta/2, BatchNorm folded, analog input at every step, output = time-averaged logits.")
    doc.table(headers, table)
    doc.image("accuracy_vs_timesteps.png", "accuracy vs time steps")
    doc.paragraph("Thresholds per layer (the ANN's ReLU at that path, now a population): "
                  + ", ".join(f"{_threshold_name(model, snn, k)} {v:.3f}" for k, v in snn.info["thresholds"].items()))
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
