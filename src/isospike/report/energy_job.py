"""`isospike energy`: energy per inference of a converted network on hardware presets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from isospike import energy
from isospike._io import atomic_write_json
from isospike.conversion import codings, convert
from isospike.data import load_dataset
from isospike.energy.hardware import get_hardware
from isospike.models import SmallCNN
from isospike.report.tables import text_table
from isospike.train import fit_classifier, load_trained


def _model_and_data(args: argparse.Namespace, echo):
    if args.model:
        folder = Path(args.model)
        model = load_trained(folder)
        ds_name = args.dataset or json.loads((folder / "model.json").read_text()).get("dataset", "digits")
        data = load_dataset(ds_name)
        echo(f"model: {folder} ({ds_name})")
    else:
        data = load_dataset(args.dataset or "digits")
        torch.manual_seed(0)
        model = SmallCNN(in_channels=data.input_shape[0], num_classes=data.num_classes, input_size=data.input_shape[-1])
        echo(f"model: SmallCNN trained now on {data.name} (10 epochs)")
        fit_classifier(model, data.train, epochs=10, progress=False)
    return model.eval(), data


def run_energy(args: argparse.Namespace, echo=print) -> Path:
    hardware = [get_hardware(h.strip()) for h in args.hardware.split(",") if h.strip()]
    if not hardware:
        raise ValueError("--hardware needs at least one preset")
    if args.coding != "exact" and args.coding not in codings():
        raise ValueError(f"unknown coding {args.coding!r}; available: exact, {', '.join(codings())}")
    model, data = _model_and_data(args, echo)
    x = data.test.x[: args.samples]
    if args.coding == "exact":
        from isospike import exact

        snn = exact.convert(model)
    else:
        snn = convert(model, coding=args.coding, timesteps=args.timesteps, calibration=data.train.x[:512])
    out = Path(args.out)
    rows, results = [], {}
    for hw in hardware:
        full = energy.estimate(snn, x, hardware=hw)
        ops = energy.estimate(snn, x, hardware=hw, mode="ops")
        c = full.by_category
        dm_share = c["data_movement"] / full.total_j if full.total_j else 0.0
        rows.append([hw.name, 1e9 * full.total_j, 1e9 * c["compute"], 1e9 * c["data_movement"], 1e9 * c["communication"],
                     f"{100 * dm_share:.0f}%", 1e9 * ops.total_j,
                     "-" if full.ann_total_j is None else 1e9 * full.ann_total_j,
                     "-" if full.ratio_to_ann is None else f"{full.ratio_to_ann:.3g}x"])
        full.plot(out / f"energy_{hw.name}.png")
        results[hw.name] = {"full": full.as_dict(), "ops": ops.as_dict()}
    echo(f"\n{args.coding} coding, T = {args.timesteps}, {len(x)} {data.name} test images; nJ per inference")
    echo(text_table(["hardware", "total", "compute", "data movement", "communication", "data share", "short formula",
                     "ANN same hw", "ANN / SNN"], rows))
    atomic_write_json(out / "energy.json", {"coding": args.coding, "timesteps": args.timesteps, "samples": len(x),
                                             "dataset": data.name, "results": results})
    echo(f"\nwritten: {out / 'energy.json'} and energy_<hardware>.png")
    return out
