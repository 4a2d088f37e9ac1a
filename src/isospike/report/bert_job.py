"""`isospike convert --model <Hugging Face folder> --coding exact`: a BERT-style encoder run
through the gate circuits on a few sentences, checked bit for bit against its pinned float32
reference and compared with the unmodified model."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import isospike as isp
from isospike._io import atomic_write_json
from isospike.report.document import Document, command_line, provenance_record
from isospike.report.tables import text_table

DEFAULT_SENTENCES = (
    "Spiking neurons can add floating-point numbers exactly.",
    "The weather in Amsterdam was grey and windy all week.",
)


def run_convert_bert(args: argparse.Namespace, echo=print) -> Path:
    from isospike.models.minilm import load_bert

    if args.coding != "exact":
        raise ValueError("a Hugging Face BERT-style model converts with --coding exact on the command line "
                         "(TTFS transformers are trained in Python: isospike.train.ttfs_bert)")
    tok, model = load_bert(args.model)
    sentences = list(args.text) if args.text else list(DEFAULT_SENTENCES)
    out = Path(args.out or f"runs/convert-{Path(args.model).name}-exact")
    snn, ref = isp.exact.convert(model), isp.exact.reference(model)
    rows, results = [], []
    with torch.no_grad():
        for text in sentences[: args.samples]:
            enc = tok([text], return_tensors="pt")
            start = time.perf_counter()
            h = snn(**enc).last_hidden_state
            seconds = time.perf_counter() - start
            same = torch.equal(h.view(torch.int32), ref(**enc).last_hidden_state.view(torch.int32))
            native = model(**enc).last_hidden_state
            ulp = isp.metrics.ulp_distance(h, native)
            cos = float(torch.cosine_similarity(h.flatten(), native.flatten(), dim=0))
            counts = snn.counts()
            rows.append([text[:48], enc["input_ids"].shape[1], "yes" if same else "NO", float(ulp.float().median()),
                         int(ulp.max()), cos, seconds, counts.spikes / 1e9])
            results.append({"text": text, "tokens": int(enc["input_ids"].shape[1]), "bit_identical_to_reference": same,
                            "median_ulp_vs_native": float(ulp.float().median()), "max_ulp_vs_native": int(ulp.max()),
                            "cosine_vs_native": cos, "seconds": seconds, "spikes": counts.spikes,
                            "gate_evaluations": counts.gate_evaluations})
    headers = ["sentence", "tokens", "bit-exact", "median ULP vs native", "max ULP", "cosine", "seconds", "G spikes"]
    echo(text_table(headers, rows))
    doc = Document(f"isospike convert: {Path(args.model).name} through IF-neuron gate circuits")
    doc.paragraph("Every arithmetic operation of the encoder (linear layers, attention, softmax, GELU, LayerNorm) runs "
                  "through threshold-gate circuits on spatial-bit spikes; **bit-exact** compares the last hidden states "
                  "with `isospike.exact.reference` (the same pinned float32 sequence in plain PyTorch).")
    doc.table(headers, rows)
    doc.provenance(command_line(args))
    doc.write(out)
    atomic_write_json(out / "results.json", {"model": str(args.model), "sentences": results,
                                             "provenance": provenance_record(command_line(args))})
    echo(f"report: {out / 'report.html'}")
    return out
