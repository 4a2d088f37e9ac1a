"""`isospike convert --hf FOLDER` (or `--model FOLDER --coding exact`): a local Hugging Face model
-- an encoder (BERT, MiniLM, ...) or a decoder LLM (Llama, Qwen, GPT-2, ...) -- run through the
gate circuits on a few sentences, checked bit for bit against its pinned float32 reference and
compared with the unmodified model. Decoders also generate a few tokens greedily through the
gates with their KV cache."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Protocol, cast

import torch

import isospike as isp
from isospike._io import atomic_write_json
from isospike.report.document import Document, command_line, provenance_record
from isospike.tables import text_table

DEFAULT_SENTENCES = (
    "Spiking neurons can add floating-point numbers exactly.",
    "The weather in Amsterdam was grey and windy all week.",
)


class _Generates(Protocol):
    """A Hugging Face decoder: its exact copy keeps the original class and so its ``generate``."""

    def generate(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...


def load_hf(folder: str | Path) -> tuple[Any, Any, bool]:
    """(tokenizer, model, is_decoder) of a local Hugging Face folder, read as data
    (:func:`isospike.serialize.hf.load_folder`): the config through the closed sets exact files
    use, every weight the config implies present with its shape (a folder that lacks one, or
    holds others, is refused naming them: nothing is random-initialized), safetensors only, no
    code shipped with the folder, offline, float32, eval mode."""
    from isospike.serialize.hf import load_folder

    loaded = load_folder(folder)
    return loaded.tokenizer, loaded.model, loaded.decoder


def _inputs(tok: Any, model: Any, text: str) -> dict[str, torch.Tensor]:
    """The tokenizer's tensors the model's forward accepts (a BERT tokenizer's token_type_ids are
    dropped for a decoder that has none)."""
    import inspect

    enc = tok([text], return_tensors="pt")
    named = {name for name, p in inspect.signature(model.forward).parameters.items() if p.kind != p.VAR_KEYWORD}
    return {k: v for k, v in enc.items() if k in named or k in ("input_ids", "attention_mask")}


def _output(out: Any, decoder: bool) -> torch.Tensor:
    return out.logits[:, -1] if decoder else out.last_hidden_state


def run_convert_hf(args: argparse.Namespace, echo=print) -> Path:
    folder = args.hf or args.model
    if args.coding is None:  # the only coding a Hugging Face folder converts with here
        args.coding = "exact"
    if args.coding != "exact":
        raise ValueError("a Hugging Face model converts with --coding exact on the command line "
                         "(TTFS transformers are converted and trained in Python: isospike.convert(model, "
                         "coding='ttfs', front='sites', products='binary') and isospike.train.distill.distill; "
                         "isospike.train.ttfs_bert for BERT classifiers)")
    tok, model, decoder = load_hf(folder)
    sentences = list(args.text) if args.text else list(DEFAULT_SENTENCES)
    out = Path(args.out or f"runs/convert-{Path(folder).name}-exact")
    snn, ref = isp.exact.convert(model), isp.exact.reference(model)
    what = "logits of the last token" if decoder else "last hidden states"
    rows, results = [], []
    with torch.no_grad():
        for text in sentences[: args.samples]:
            enc = _inputs(tok, model, text)
            start = time.perf_counter()
            y = _output(snn(**enc), decoder)
            seconds = time.perf_counter() - start
            counts = snn.counts()
            same = torch.equal(y.contiguous().view(torch.int32), _output(ref(**enc), decoder).contiguous().view(torch.int32))
            native = _output(model(**enc), decoder)
            ulp = isp.metrics.ulp_distance(y, native)
            cos = float(torch.cosine_similarity(y.flatten(), native.flatten(), dim=0))
            record = {"text": text, "tokens": int(enc["input_ids"].shape[1]), "bit_identical_to_reference": same,
                      "median_ulp_vs_native": float(ulp.float().median()), "max_ulp_vs_native": int(ulp.max()),
                      "cosine_vs_native": cos, "seconds": seconds, "spikes": counts.spikes,
                      "gate_evaluations": counts.gate_evaluations}
            generated = ""
            if decoder and args.max_new_tokens:
                kw = dict(max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tok.eos_token_id)
                g = cast(_Generates, snn).generate(**enc, **kw)
                r = cast(_Generates, ref).generate(**enc, **kw)
                generated = tok.decode(g[0, enc["input_ids"].shape[1]:])
                record.update(generated=generated, generated_equals_reference=bool(torch.equal(g, r)))
            results.append(record)
            rows.append([text[:40], record["tokens"], "yes" if same else "NO", record["median_ulp_vs_native"],
                         record["max_ulp_vs_native"], f"{cos:.6f}", f"{seconds:.1f}", f"{counts.spikes / 1e9:.1f}"]
                        + ([repr(generated)[:30]] if decoder and args.max_new_tokens else []))
    headers = ["sentence", "tokens", "bit-exact", "median ULP vs native", "max ULP", "cosine", "seconds", "G spikes"]
    headers += ["generated through gates"] if decoder and args.max_new_tokens else []
    echo(text_table(headers, rows))
    doc = Document(f"isospike convert: {Path(folder).name} through IF-neuron gate circuits")
    doc.paragraph(f"Every floating-point operation of the model's own forward ({type(model).__name__}) runs through "
                  "threshold-gate circuits on spatial-bit spikes (operator-level capture); **bit-exact** compares the "
                  f"{what} with `isospike.exact.reference` (the same pinned float32 sequence in plain PyTorch); ULP and "
                  "cosine compare with the unmodified model.")
    doc.table(headers, rows)
    doc.provenance(command_line(args))
    doc.write(out)
    atomic_write_json(out / "results.json", {"model": str(folder), "architecture": type(model).__name__,
                                             "decoder": decoder, "sentences": results,
                                             "provenance": provenance_record(command_line(args))})
    echo(f"report: {out / 'report.html'}")
    return out
