"""`isospike sweep`: one parameter over a grid, with a table, a plot and a report.

* ``timesteps``: a rate-coded SNN's accuracy and spikes against T;
* ``dead-zone``: M-TTFS accuracy and spikes against the dead zone k;
* ``leak`` / ``noise``: bit-exact float32 multiplication by IF-neuron gate circuits with a leaky
  membrane / noisy synaptic weights (sigma, relative) -- the fraction of results still
  bit-identical to IEEE-754.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import isospike as isp
from isospike._io import atomic_savefig, atomic_write_json
from isospike.report.document import Document, command_line, provenance_record
from isospike.report.loading import load_model
from isospike.tables import text_table

PARAMETERS = ("timesteps", "dead-zone", "leak", "noise")


def _values(param: str, text: str | None) -> list[float]:
    defaults = {"timesteps": "1,2,4,8,16,32", "dead-zone": "0,1,2,3,4,5", "leak": "0.1,0.25,0.5,0.75,1.0",
                "noise": "0,0.05,0.1,0.2,0.3,0.4"}
    raw = text or defaults[param]
    try:
        values = [float(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--values must be comma-separated numbers, got {raw!r}") from None
    if not values:
        raise ValueError("--values is empty")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"--values must be finite numbers, got {raw!r}")
    if param in ("timesteps", "dead-zone"):
        if any(v != int(v) or v < (1 if param == "timesteps" else 0) for v in values):
            raise ValueError(f"{param} values must be integers >= {1 if param == 'timesteps' else 0}, got {raw!r}")
    if param == "leak" and any(not 0 < v <= 1 for v in values):
        raise ValueError(f"leak values must be in (0, 1], got {raw!r}")
    if param == "noise" and any(v < 0 for v in values):
        raise ValueError(f"noise values must be >= 0, got {raw!r}")
    return values


def run_sweep(args: argparse.Namespace, echo=print) -> Path:
    if args.param not in PARAMETERS:
        raise ValueError(f"unknown --param {args.param!r}; choose one of {', '.join(PARAMETERS)}")
    values = _values(args.param, args.values)
    out = Path(args.out or f"runs/sweep-{args.param}")
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if args.param in ("timesteps", "dead-zone"):
        model, data, described = load_model(args.model, args.arch, args.dataset, echo)
        x, y = data.test.x[: args.samples], data.test.y[: args.samples]
        cal = data.train.x[:512]
        if args.param == "timesteps" and getattr(model, "coding", None) == "rate":
            snn = model  # a saved rate network: simulated at every T of the grid
        elif getattr(model, "coding", None) is not None:
            raise ValueError(f"{described}: sweep --param {args.param} converts the ANN at every grid point; pass the "
                             "ANN it came from (e.g. --model runs/demo/model)")
        elif args.param == "timesteps":
            snn = isp.convert(model, coding="rate", timesteps=int(max(values)), calibration=cal)
        for v in tqdm(values, desc=f"sweep {args.param}", disable=args.no_progress):
            if args.param == "dead-zone":
                snn = isp.convert(model, coding="mttfs", timesteps=15, calibration=cal, dead_zone=int(v))
                assert isinstance(snn, isp.SpikingNetwork)  # the M-TTFS coding builds a SpikingNetwork
                res = isp.simulate(snn, x)
            else:
                assert isinstance(snn, isp.SpikingNetwork)  # the rate coding builds a SpikingNetwork
                res = isp.simulate(snn, x, timesteps=int(v))
            rows.append({args.param: int(v), "accuracy": float((res.output.argmax(-1) == y).float().mean()),
                         "spikes_per_sample": res.spikes_per_sample, "synaptic_ops_per_sample": res.synaptic_ops / res.samples})
        metrics = ["accuracy", "spikes_per_sample"]
        subject = f"{described}, {len(x)} test samples"
    else:
        g = torch.Generator().manual_seed(0)
        n = args.samples
        a = torch.randn(n, generator=g) * torch.exp2(torch.randint(-8, 8, (n,), generator=g).float())
        b = torch.randn(n, generator=g) * torch.exp2(torch.randint(-8, 8, (n,), generator=g).float())
        ref = (a * b).view(torch.int32)
        for v in tqdm(values, desc=f"sweep {args.param}", disable=args.no_progress):
            kw = {"leak": v, "noise": 0.0} if args.param == "leak" else {"leak": 1.0, "noise": v}
            got = isp.exact.mul(a, b, backend="neuron", generator=torch.Generator().manual_seed(1), **kw)
            rows.append({args.param: v, "bit_identical": float((got.view(torch.int32) == ref).float().mean())})
        metrics = ["bit_identical"]
        subject = f"float32 multiplication of {n} random pairs by threshold-gate circuits (neuron backend)"
    table = [[r[args.param], *[100 * r[m] if m in ("accuracy", "bit_identical") else r[m] for m in metrics]] for r in rows]
    shown = [args.param] + [f"{m} (%)" if m in ("accuracy", "bit_identical") else m for m in metrics]
    echo(text_table(shown, table))
    _plot(rows, args.param, metrics, out / "sweep.png", subject)
    doc = Document(f"isospike sweep: {args.param}")
    doc.paragraph(subject + ".").table(shown, table).image("sweep.png", f"{', '.join(metrics)} against {args.param}")
    doc.provenance(command_line(args))
    md, page = doc.write(out)
    atomic_write_json(out / "sweep.json", {"parameter": args.param, "subject": subject, "rows": rows,
                                           "provenance": provenance_record(command_line(args))})
    echo(f"report: {page}; data: {out / 'sweep.json'}")
    return out


def _plot(rows: list[dict], param: str, metrics: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    xs = [r[param] for r in rows]
    for ax, m in zip(axes[0], metrics):
        scale = 100 if m in ("accuracy", "bit_identical") else 1
        ax.plot(xs, [scale * r[m] for r in rows], "o-")
        ax.set_xlabel(param)
        ax.set_ylabel(f"{m} (%)" if scale == 100 else m)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
