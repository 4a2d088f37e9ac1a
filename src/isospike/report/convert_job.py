"""`isospike convert` and `isospike verify`: convert a model with any coding, measure it, certify
it, save it, and write report.md + report.html."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

import isospike as isp
from isospike._io import atomic_savefig, atomic_write_json
from isospike.conversion import get_coding
from isospike.report.document import Document, command_line, provenance_record
from isospike.report.loading import convert_model, load_model, resolve_coding
from isospike.tables import text_table

# command-line flags that set a coding option of the same name, where the coding has it
_OPTION_FLAGS = ("timesteps", "dead_zone", "levels", "synapse")


def convert_options(args: argparse.Namespace) -> dict[str, Any]:
    """Coding options from the command line: each flag whose option the coding declares
    (``isospike.conversion.get_coding(name).options``); flags it does not take are left out, and
    unset ones keep the coding's defaults."""
    import dataclasses

    from isospike.conversion import get_coding

    fields = {f.name for f in dataclasses.fields(get_coding(args.coding).options)}
    opts: dict[str, Any] = {}
    for flag in _OPTION_FLAGS:
        value = getattr(args, flag, None)
        if flag not in fields or value is None:
            continue
        if flag == "synapse":
            if value == "in2o3":
                opts["synapse"] = isp.devices.OptoelectronicSynapse.in2o3()
            continue
        opts[flag] = value
    return opts


def _plot_layers(stats: dict, path: Path, title: str, net: Any = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, s in stats.items() if s.kind == "neuron"]
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(names) + 2), 3.6))
    rates = [stats[n].spikes / max(stats[n].neuron_updates, 1) for n in names]
    ax.bar(range(len(names)), rates, color="tab:red")
    ax.set_xticks(range(len(names)), [_layer_label(net, n) for n in names], rotation=30, ha="right")
    ax.set_ylabel("spikes per neuron per step")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return path


def run_convert(args: argparse.Namespace, echo=print) -> Path:
    if getattr(args, "hf", None) or (args.model and Path(args.model).is_dir() and (Path(args.model) / "config.json").is_file()):
        from isospike.report.hf_job import run_convert_hf

        return run_convert_hf(args, echo)
    model, data, described = load_model(args.model, args.arch, args.dataset, echo)
    resolve_coding(args, model)
    out = Path(args.out or f"runs/convert-{data.name}-{args.coding}")
    out.mkdir(parents=True, exist_ok=True)
    x, y = data.test.x[: args.samples], data.test.y[: args.samples]
    calibration = data.train.x[:512]
    reused = getattr(model, "coding", None) is not None  # a saved spiking network, used as it is
    with torch.no_grad():
        baseline = isp.equivalent(model) if reused else model  # its ANN is not in the file: the network it equals
        ann_acc = float((baseline(x).argmax(-1) == y).float().mean())
    baseline_name = "equivalent network (isospike.equivalent)" if reused else "ANN"
    doc = Document(f"isospike convert: {described}, {args.coding} coding")
    spec = get_coding(args.coding)
    snn = convert_model(model, args.coding, calibration, convert_options(args), described, args.model)
    n = len(x) if spec.simulation_samples is None else min(len(x), spec.simulation_samples)  # gate circuits are slow
    res = isp.simulate(snn, x[:n])
    acc = float((res.output.argmax(-1) == y[:n]).float().mean())
    cert = isp.verify(snn, x[: min(n, 64 if spec.simulation_samples is None else 4)])
    summary = [[baseline_name, 100 * ann_acc, len(x)], [f"SNN ({args.coding}, T={res.timesteps})", 100 * acc, n]]
    stats_rows = [[_layer_label(snn, name), s.kind, s.neurons, s.spikes / res.samples, s.synaptic_ops / res.samples]
                  for name, s in res.layers.items() if s.kind != "gates"]
    try:
        saved: Path | None = isp.save(snn, out / "snn.safetensors")
    except TypeError as exc:  # a network isospike cannot rebuild from data alone: said in the report
        saved, not_saved = None, str(exc)
    else:
        not_saved = ""
    if stats_rows:
        _plot_layers(res.layers, out / "spike_rates.png", f"{args.coding}: firing per layer", snn)
    echo(text_table(["network", "accuracy (%)", "samples"], summary))
    energies = []
    energy_samples = min(n, 64 if spec.simulation_samples is None else 2)
    for hw in ("horowitz45", "loihi"):
        rep = isp.energy.estimate(snn, x[:energy_samples], hardware=hw)
        rep.plot(out / f"energy_{hw}.png")
        energies.append(rep)
    echo(cert.table())
    doc.heading("Accuracy").paragraph(f"On the first test samples of {data.name} (counts per row).")
    doc.table(["network", "accuracy (%)", "test samples"], summary)
    doc.heading("Equivalence certificate").paragraph(
        f"`isospike.verify` on {cert.samples} test samples: "
        f"**{_verdict(cert)}**.")
    doc.table(["layer", "guarantee", "measured max |diff|", "bound", "violations", "holds", "why"],
              [[_layer_label(snn, c.layer), c.guarantee, c.max_abs_diff if c.max_ulp is None else f"{c.max_ulp} ULP",
                c.bound, f"{c.violations:,}/{c.entries:,}", c.status, _why(c)] for c in cert.layers])
    if stats_rows:
        doc.heading("Spikes and synaptic operations per sample").paragraph(
            f"Simulated on {n} test samples; per sample.")
        doc.table(["layer", "kind", "neurons", "spikes", "synaptic ops"], stats_rows)
        doc.image("spike_rates.png", "firing rate per layer")
    doc.heading("Energy per inference").paragraph(
        f"`isospike.energy.estimate` on {energy_samples} test samples, per inference. "
        + " ".join(f"{r.ann_pricing()}." for r in energies))
    doc.table(["hardware", "total (nJ)", "compute (nJ)", "data movement (nJ)", "communication (nJ)",
               "ANN, same hardware (nJ)", "comparison"],
              [[r.hardware.name, 1e9 * r.total_j, 1e9 * r.by_category["compute"], 1e9 * r.by_category["data_movement"],
                1e9 * r.by_category["communication"], "-" if r.ann_total_j is None else 1e9 * r.ann_total_j,
                r.comparison() or "-"] for r in energies])
    for r in energies:
        doc.image(f"energy_{r.hardware.name}.png", f"energy by layer and category on {r.hardware.name}")
    if saved is not None:
        doc.paragraph(f"Saved network: `{saved}` (reload with `isospike.load`).")
    elif not_saved:
        doc.paragraph(f"Not saved: {not_saved}")
    doc.provenance(command_line(args))
    md, page = doc.write(out)
    atomic_write_json(out / "results.json", {
        "model": described, "dataset": data.name, "coding": args.coding, "ann_accuracy": ann_acc, "snn_accuracy": acc,
        "certificate": cert.as_dict(), "energy": {r.hardware.name: r.as_dict() for r in energies},
        "provenance": provenance_record(command_line(args)),
    })
    echo(f"report: {page} (and {md.name}); results.json" + (f"; network: {saved}" if saved else ""))
    return out



def _layer_label(net: Any, path: str) -> str:
    """A layer's path with what it is: ``features.3 (Conv2d synapses)``, ``2 (IF neurons)``."""
    from isospike.layer_names import layer_label

    return layer_label(net, path)


DOCS_CERTIFICATES = "docs/verification.md"


def _verdict(cert: Any) -> str:
    """The certificate in a few words; bounded-error misses are named as what they are."""
    if cert.holds:
        return "all guarantees hold"
    if cert.misses_only_bounds:
        return ("the exact and QNN-equivalent guarantees hold; the bounded-error (rate) layers are a statistical "
                "certificate: " + cert.summary())
    return "some guarantees fail"


def _why(c: Any) -> str:
    """One sentence on a certificate row: why a NO happens (and whether it is expected)."""
    if c.holds:
        return ""
    if c.guarantee == "bounded-error":
        return (f"a statistical certificate, expected for rate coding: a neuron whose spike input arrives unevenly over "
                f"the steps can end outside [0, theta) and miss the per-neuron bound max(v_init, theta - v_init) / T; "
                f"{c.violations:,} of {c.entries:,} did (see {DOCS_CERTIFICATES})")
    if c.guarantee == "qnn-equivalent":
        return (f"the spiking layer differs from its quantized network on {c.violations} values: not settled in the "
                f"steps run (sigma-delta) or a device with variation (see {DOCS_CERTIFICATES})")
    return f"{c.violations} values differ from the pinned reference: a defect, please report it (see {DOCS_CERTIFICATES})"


def run_verify(args: argparse.Namespace, echo=print) -> bool:
    """Certify a saved network on test data; returns whether every guarantee held."""
    from isospike.data import load_dataset

    snn = isp.load(args.snn)
    data = load_dataset(args.dataset)
    x = data.test.x[: args.samples]
    cert = isp.verify(snn, x)
    echo(cert.table())
    out = Path(args.out or Path(args.snn).with_suffix("").as_posix() + "-verify")
    doc = Document(f"isospike verify: {Path(args.snn).name} on {data.name}")
    doc.paragraph(f"{cert.samples} test samples; coding `{cert.coding}`: "
                  f"**{_verdict(cert)}**; "
                  f"largest output difference to `isospike.equivalent`: {cert.output_max_abs_diff:.3g}.")
    doc.table(["layer", "guarantee", "measured max |diff|", "bound", "violations", "holds", "why"],
              [[_layer_label(snn, c.layer), c.guarantee, c.max_abs_diff, c.bound, f"{c.violations:,}/{c.entries:,}",
                c.status, _why(c)] for c in cert.layers])
    doc.provenance(command_line(args))
    doc.write(out)
    atomic_write_json(out / "certificate.json", cert.as_dict())
    echo(f"report: {out / 'report.html'}; certificate: {out / 'certificate.json'}")
    return cert.holds
