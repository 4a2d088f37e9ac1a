"""`isospike deploy`: quantize a network for a neuromorphic chip, check the vendor's simulator
against isospike's simulation of the same integer network, and write report.html + report.md
and deploy.json."""

from __future__ import annotations

import argparse
from pathlib import Path

import isospike as isp
from isospike._io import atomic_write_json
from isospike.deploy.common import LAYER_HEADERS
from isospike.report.document import Document, command_line, provenance_record
from isospike.report.loading import load_model


def run_deploy(args: argparse.Namespace, echo=print) -> Path:
    model, data, described = load_model(args.model, args.arch, args.dataset, echo)
    calibration = data.train.x[:512]
    if getattr(model, "coding", None) is None:  # an ANN: the rate coding, at T steps
        snn = isp.convert(model, coding="rate", timesteps=args.timesteps or 16, calibration=calibration)
    else:
        snn = model
    options = {} if args.timesteps is None or snn is not model else {"timesteps": args.timesteps}
    dep = isp.deploy(snn, target=args.target, calibration=calibration, **options)
    echo(dep.table())
    x, y = data.test.x[: args.samples], data.test.y[: args.samples]
    agreement = dep.check(x, y)
    echo(agreement.table())
    out = Path(args.out or f"runs/deploy-{args.target}")
    doc = Document(f"isospike deploy: {described} on {args.target}")
    doc.paragraph(f"{described}, rate coding; quantized for **{args.target}** and run for {dep.timesteps} steps on "
                  f"{len(x)} {data.name} test samples in {agreement.simulator} and in isospike's own simulation of the "
                  "same integer network.")
    doc.heading("Layers on the chip").table(LAYER_HEADERS, [p.row() for p in dep.layers])
    doc.bullets(dep.notes)
    doc.heading("Agreement")
    doc.table(["check", "value"], [
        ["vendor simulator vs isospike (same integer network): decisions", f"{100 * agreement.decisions_equal:.2f}%"],
        ["spike totals per neuron identical", f"{100 * agreement.spike_counts_equal:.2f}%"],
        ["read-out identical at every step", "yes" if agreement.outputs_identical else "NO"],
        ["vendor simulator vs isospike's float SNN: decisions", f"{100 * agreement.float_snn_decisions_equal:.2f}%"],
        *[[f"accuracy, {k}", f"{100 * v:.2f}%"] for k, v in agreement.accuracy.items()],
    ])
    doc.provenance(command_line(args))
    md, page = doc.write(out)
    atomic_write_json(out / "deploy.json", {
        "model": described, "dataset": data.name, "target": args.target, "timesteps": dep.timesteps,
        "layers": [p.__dict__ for p in dep.layers], "notes": dep.notes, "agreement": agreement.as_dict(),
        "provenance": provenance_record(command_line(args)),
    })
    echo(f"report: {page} (and {md.name}); deploy.json")
    return out
