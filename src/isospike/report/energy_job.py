"""`isospike energy`: energy per inference of a converted network on hardware presets, with
report.html + report.md (one :class:`~isospike.report.document.Document`), energy.json and one
stacked-bar PNG per preset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torch import nn

from isospike import energy
from isospike._io import atomic_write_json
from isospike.energy.hardware import get_hardware
from isospike.report.document import Document, command_line, provenance_record
from isospike.report.loading import convert_model, load_model, resolve_coding
from isospike.tables import text_table

HEADERS = ["hardware", "total", "compute", "data movement", "communication", "data share", "short formula",
           "ANN same hw", "ANN / SNN"]


def _convert(model: nn.Module, args: argparse.Namespace, calibration, described: str) -> nn.Module:
    """The network to price: ``isospike.convert`` with the chosen coding (T steps where given)."""
    options = {} if args.timesteps is None else {"timesteps": args.timesteps}
    return convert_model(model, args.coding, calibration, options, described, args.model)


def _estimate(activity: energy.NetworkActivity, hw) -> tuple[list[Any], dict[str, Any], Any]:
    """One preset: the table row (nJ), the JSON entry, and the full report (for its plot)."""
    full = energy.price(activity, hw)
    ops = None if hw.compute_in_memory else energy.price(activity, hw, mode="ops")  # no short formula there
    c = full.by_category
    dm_share = c["data_movement"] / full.total_j if full.total_j else 0.0
    row = [hw.name, 1e9 * full.total_j, 1e9 * c["compute"], 1e9 * c["data_movement"], 1e9 * c["communication"],
           f"{100 * dm_share:.0f}%", "-" if ops is None else 1e9 * ops.total_j,
           "-" if full.ann_total_j is None else 1e9 * full.ann_total_j,
           "-" if full.ratio_to_ann is None else f"{full.ratio_to_ann:.3g}x"]
    return row, {"full": full.as_dict(), "ops": None if ops is None else ops.as_dict()}, full


def run_energy(args: argparse.Namespace, echo=print) -> Path:
    """Convert ``args.model`` (see :func:`~isospike.report.loading.load_model`), price it on every
    preset of ``args.hardware`` and write the report into ``args.out``."""
    hardware = [get_hardware(h.strip()) for h in args.hardware.split(",") if h.strip()]
    if not hardware:
        raise ValueError("--hardware needs at least one preset, e.g. --hardware horowitz45,loihi")
    model, data, described = load_model(args.model, getattr(args, "arch", None), args.dataset, echo)
    echo(f"model: {described}")
    resolve_coding(args, model)
    x = data.test.x[: args.samples]
    snn = _convert(model, args, data.train.x[:512], described)
    out = Path(args.out)
    rows, results = [], {}
    activity = energy.collect(snn, x)  # one simulation, priced on every preset in both modes
    for hw in hardware:
        row, results[hw.name], full = _estimate(activity, hw)
        rows.append(row)
        full.plot(out / f"energy_{hw.name}.png")
    timesteps = getattr(snn, "timesteps", 1)
    steps = f"T = {timesteps}"
    subject = f"{described}; {args.coding} coding, {steps}; {len(x)} {data.name} test images"
    echo(f"\n{subject}; nJ per inference")
    echo(text_table(HEADERS, rows))
    command = command_line(args)
    doc = Document(f"isospike energy: {args.coding} coding on {len(hardware)} hardware preset(s)")
    doc.paragraph(subject + ". Energy per inference in nJ from `isospike.energy.estimate`: compute, data movement "
                  "(weights, membranes, spikes through the memory hierarchy) and communication; **short formula** is "
                  "E_MAC * MACs + E_AC * ACs (`mode=\"ops\"`); the ANN column prices the unconverted network on the "
                  "same hardware.")
    doc.table([h if h in ("hardware", "data share", "ANN / SNN") else f"{h} (nJ)" for h in HEADERS], rows)
    for hw in hardware:
        doc.image(f"energy_{hw.name}.png", f"energy by layer and category on {hw.name}")
    doc.provenance(command)
    md, page = doc.write(out)
    atomic_write_json(out / "energy.json", {
        "model": described, "coding": args.coding, "timesteps": timesteps,
        "samples": len(x), "dataset": data.name, "results": results, "provenance": provenance_record(command)})
    echo(f"\nreport: {page} (and {md.name}); energy.json and energy_<hardware>.png")
    return out
