"""`isospike train`: ReLU ANN -> noise-aware fine-tuning -> converted rate SNN, with report.html +
report.md (one :class:`~isospike.report.document.Document`) and results.json."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from isospike._io import atomic_write, atomic_write_json
from isospike.conversion import SpikingNetwork, convert
from isospike.conversion.evaluation import evaluate_over_time
from isospike.data import load_dataset
from isospike.models import build
from isospike.report.document import Document, command_line, provenance_record
from isospike.report.loading import load_weights
from isospike.tables import text_table
from isospike.train import accuracy, fit_classifier, noise_aware, save_trained
from isospike.train.nq import NoiseAwareHistory


def run_train(args: argparse.Namespace, echo=print) -> Path:
    out = Path(args.out or f"runs/train-{args.dataset}-{args.model}")
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset)
    train = data.train if args.train_samples is None else data.train.subset(args.train_samples, seed=args.seed)
    shape = data.input_shape
    kwargs = {"in_channels": shape[0], "num_classes": data.num_classes}
    if args.model == "small-cnn":
        kwargs["input_size"] = shape[-1]
    torch.manual_seed(args.seed)
    model = build(args.model, **kwargs)
    ann_path = out / "ann.safetensors"
    progress = not args.no_progress
    if args.init:
        load_weights(model, args.init, f"--model {args.model} on {data.name}")
        echo(f"loaded ReLU weights from {args.init}")
    elif ann_path.is_file() and not args.no_resume:
        load_weights(model, ann_path, f"--model {args.model} on {data.name} (delete it or pass --no-resume)")
        echo(f"reusing the ReLU ANN trained earlier: {ann_path}")
    elif args.ann_epochs > 0:
        echo(f"training the ReLU ANN ({args.model}) on {args.dataset}: {args.ann_epochs} epochs")
        fit_classifier(model, train, epochs=args.ann_epochs, seed=args.seed, progress=progress, batch_size=128)
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        atomic_write(ann_path, lambda p: save_file(state, str(p)))
    ann_acc = accuracy(model, data.test)
    echo(f"ReLU ANN test accuracy: {100 * ann_acc:.2f}%")
    echo(f"noise-aware training: {args.epochs} epochs, L = {args.levels}, noise = {args.noise}")
    trained = noise_aware(model, train, epochs=args.epochs, levels=args.levels, noise=args.noise, seed=args.seed,
                          checkpoint_dir=out / "checkpoints", resume=not args.no_resume, progress=progress)
    save_trained(out, trained, {"model": args.model, "kwargs": kwargs, "levels": args.levels, "noise": args.noise,
                                "dataset": args.dataset})
    q_acc = accuracy(trained, data.test)
    snn = convert(trained, coding="rate", timesteps=max(args.timesteps))
    assert isinstance(snn, SpikingNetwork)  # the rate coding builds a SpikingNetwork
    rows = evaluate_over_time(snn, data.test, args.timesteps)
    headers = ["T", "SNN acc (%)", "spikes / sample"]
    table = [[r.timesteps, 100 * r.accuracy, r.spikes_per_sample] for r in rows]
    echo(f"\nquantized ANN (noise off) test accuracy: {100 * q_acc:.2f}%")
    echo(text_table(headers, table))
    hist = trained.nq_history
    assert isinstance(hist, NoiseAwareHistory)  # attached by noise_aware
    epochs_table = [[e.epoch, e.train_loss, 100 * e.val_ann_accuracy, 100 * e.val_snn_accuracy,
                     ", ".join(f"{p}: {s:.3f}" for p, s in e.sigma.items())] for e in hist.epochs]
    doc = Document(f"isospike train: {args.model} on {args.dataset}")
    doc.paragraph(f"ReLU ANN: {100 * ann_acc:.2f}%; noise-aware quantized ANN (L = {args.levels}, noise {args.noise}, "
                  f"noise off at test): {100 * q_acc:.2f}%; checkpoint chosen on the validation split "
                  f"(epoch {hist.best_epoch}).")
    doc.heading("Converted rate SNN (IF, reset by subtraction, threshold = trained lambda, V(0) = lambda/2)")
    doc.table(headers, table)
    doc.heading("Epochs")
    doc.table(["epoch", "train loss", "val ANN (%)", "val SNN T=L (%)", "sigma per layer"], epochs_table)
    doc.provenance(command_line(args))
    md, page = doc.write(out)
    atomic_write_json(out / "results.json", {
        "dataset": args.dataset, "model": args.model, "ann_accuracy": ann_acc, "quantized_ann_accuracy": q_acc,
        "snn": [r.as_dict() for r in rows], "history": hist.as_dict(),
        "provenance": provenance_record(command_line(args)),
    })
    echo(f"\nreport: {page} (and {md.name}); results.json; weights: {out / 'weights.safetensors'} "
         f"(reload: isospike.train.load_trained('{out}'))")
    return out
