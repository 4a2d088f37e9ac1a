"""`isospike train --method spiking-gamma`: a SpikingGamma network (sigma-delta neurons with gamma
memory, no surrogate gradient) on images read row by row, evaluated at several time steps."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from isospike._io import atomic_write, atomic_write_json
from isospike.data import load_dataset
from isospike.data.sequences import rows_as_frames
from isospike.models import SpikingGammaNet
from isospike.report.document import Document, command_line, provenance_record
from isospike.tables import text_table
from isospike.train import evaluate_sequences, spiking_gamma
from isospike.train.gamma import SequenceHistory


def run_train_gamma(args: argparse.Namespace, echo=print) -> Path:
    data = load_dataset(args.dataset)
    train = data.train if args.train_samples is None else data.train.subset(args.train_samples, seed=args.seed)
    xtr, xte = rows_as_frames(train.x), rows_as_frames(data.test.x)
    out = Path(args.out or f"runs/train-{args.dataset}-spiking-gamma")
    torch.manual_seed(args.seed)
    net = SpikingGammaNet(xtr.shape[-1], args.hidden, data.num_classes, K=args.buckets, theta=args.theta)
    echo(f"SpikingGamma {xtr.shape[-1]} -> {args.hidden} -> {data.num_classes}, K = {args.buckets}, {args.mode} training, "
         f"rows held {args.frame_ms} ms, dt = {args.dt} ms, {args.epochs} epochs")
    spiking_gamma(net, (xtr, train.y), epochs=args.epochs, mode=args.mode, frame_ms=args.frame_ms, dt_ms=args.dt,
                  seed=args.seed, progress=not args.no_progress)
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    atomic_write(out / "weights.safetensors", lambda p: save_file(state, str(p)))
    rows = []
    for dt in (args.dt / 4, args.dt / 2, args.dt, 2 * args.dt):
        try:
            r = evaluate_sequences(net, (xte, data.test.y), frame_ms=args.frame_ms, dt_ms=dt)
        except ValueError:
            continue  # dt does not divide the row duration
        rows.append([dt, 100 * r["accuracy"], r["spikes_per_second"]])
    headers = ["dt (ms)", "test accuracy (%)", "spikes / s"]
    echo(text_table(headers, rows))
    doc = Document(f"isospike train: SpikingGamma on {data.name} rows")
    doc.paragraph(f"Trained {args.mode} at dt = {args.dt} ms (rows held {args.frame_ms} ms); evaluated at other steps "
                  "with the same weights (time constants are in ms).")
    doc.table(headers, rows)
    history = net.history
    assert isinstance(history, SequenceHistory)  # attached by spiking_gamma
    doc.table(["epoch", "loss", "train accuracy (%)"],
              [[e.epoch, e.loss, 100 * e.train_accuracy] for e in history.epochs])
    doc.provenance(command_line(args))
    doc.write(out)
    atomic_write_json(out / "results.json", {"config": net.config, "mode": args.mode, "dt_ms": args.dt,
                                             "by_dt": [dict(zip(["dt_ms", "accuracy", "spikes_per_second"], r)) for r in rows],
                                             "history": history.as_dict(),
                                             "provenance": provenance_record(command_line(args))})
    echo(f"report: {out / 'report.html'}; weights: {out / 'weights.safetensors'}")
    return out
