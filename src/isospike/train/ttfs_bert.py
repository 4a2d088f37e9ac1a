"""The TTFS BERT classifier of Otters / Otters++ through the general path: a thin wrapper over
``isospike.convert(model, coding="ttfs", front="sites", products="binary")`` and
:func:`isospike.train.distill.distill` (the one distillation / hybrid recipe of every model).

    student = ttfs_bert(teacher, calibration, timesteps=15, synapse=OptoelectronicSynapse.in2o3())
    distill(student, teacher, train, epochs=3)         # spiking forward, QNN straight-through backward
    isp.equivalent(student)                            # its QNN: equal outputs (noise-free reads)

``teacher``: a :class:`~isospike.train.distill.BertClassifier` (a Hugging Face BertModel, mean
pooling, a linear head) or any BERT-style eager model. What the conversion puts where (per
encoder layer; the sites are those of any model, see :mod:`isospike.conversion.sites`):

    h -> TTFS -> W_q, W_k, W_v          the input of each projection is a (signed) TTFS site
    q -> TTFS,  k, v -> 1-bit           products="binary": Q (and the probabilities) coded at their
    p = softmax(q k_b^T / sqrt(d) + m)  site, K^T and V binarized per head vector (sign x mean|.|):
    c = TTFS(p) v_b                     the products become sign-selected additions (Otters)
    h1 = LayerNorm(W_o TTFS(c) + h)     softmax, LayerNorm, residual additions: digital
    f = act(W_1 TTFS(h1))               ReLU by default (``activation="relu"`` replaces the model's
    h2 = LayerNorm(W_2 TTFS(f) + h1)    GELU before conversion, as Otters does), or the model's own
    logits = head(TTFS(mean pool))

Changes from the former hand-written ``TTFSBertClassifier`` (removed): each site's step is fixed
by calibration (span = the ``percentile`` of |x| over the calibration batch, / T), not learned
during distillation; the attention probabilities are calibrated like any other site (the former
step was 1/T); the sites are those of the model's own forward (the three projections each have
their own site, the same values). Spiking and QNN modes are no longer switched: the converted
network always runs its spiking populations, and ``isospike.equivalent(student)`` is its QNN.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from isospike.conversion.sites.capture import binarize_per_head
from isospike.conversion.sites.network import CodedNetwork
from isospike.devices import OptoelectronicSynapse
from isospike.train.distill import BertClassifier, Encoded

__all__ = ["binarize_per_head", "bert_calibration", "set_synapse", "ttfs_bert"]


def bert_calibration(data: Encoded | dict | tuple, rows: int = 64) -> dict[str, Tensor]:
    """Keyword calibration batch ``{"input_ids", "attention_mask"}`` from an :class:`Encoded`
    set (its first ``rows`` sentences, shared padding trimmed), an ``(ids, mask)`` pair or a dict."""
    if isinstance(data, Encoded):
        ids, mask, _ = data.batch(torch.arange(min(rows, len(data))))
        return {"input_ids": ids, "attention_mask": mask}
    if isinstance(data, tuple):
        ids, mask = data
        return {"input_ids": ids, "attention_mask": mask}
    if isinstance(data, dict):
        return data
    raise TypeError(f"calibration must be an Encoded set, an (input_ids, attention_mask) pair or a dict of them, got "
                    f"{type(data).__name__}")


def _prepare(teacher: nn.Module, activation: str) -> nn.Module:
    """A copy of ``teacher`` whose attention shows its products (eager) and whose FFN activation
    is ReLU (``activation="relu"``) or the model's own (``"gelu"``); a :class:`BertClassifier`
    (mean pooling) loses the BertModel's unused [CLS] pooler."""
    if activation not in ("relu", "gelu"):
        raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
    kept = getattr(teacher, "hidden", None)
    # the hidden states a classifier kept from a training forward hang on its autograd graph, which
    # deepcopy refuses: the copy starts without them
    model = copy.deepcopy(teacher, memo={id(kept): []} if isinstance(kept, list) else None)
    for m in model.modules():
        config = getattr(m, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            setter = getattr(m, "set_attn_implementation", None)
            if callable(setter):
                setter("eager")
            else:
                config._attn_implementation = "eager"
        if activation == "relu" and hasattr(m, "intermediate_act_fn"):
            m.intermediate_act_fn = nn.ReLU()
    bert = getattr(model, "bert", None)
    if isinstance(model, BertClassifier) and bert is not None and getattr(bert, "pooler", None) is not None:
        bert.pooler = None  # mean pooling: the [CLS] pooler's output is never read (it would be coded and counted)
    return model


def ttfs_bert(teacher: nn.Module, calibration: Any, timesteps: int = 15, activation: str = "relu",
              synapse: OptoelectronicSynapse | None = None, binary_kv: bool = True,
              percentile: float = 99.9) -> CodedNetwork:
    """The TTFS student of a BERT classifier (see the module docstring): a copy of ``teacher``
    (ReLU FFN unless ``activation="gelu"``, eager attention) converted by the site front end with
    TTFS on every activation entering a weight and, with ``binary_kv``, Otters' 1-bit K and V
    (``products="binary"``; False: Q, K, V and the probabilities all TTFS-coded, ``"coded"``).

    ``calibration``: an :class:`Encoded` set (its first 64 sentences), an ``(ids, mask)`` pair or
    a dict of keyword arguments. Train it with :func:`isospike.train.distill.distill`."""
    from isospike.conversion import convert

    model = _prepare(teacher, activation)
    net = convert(model, coding="ttfs", timesteps=timesteps, calibration=bert_calibration(calibration),
                      synapse=synapse, front="sites", products="binary" if binary_kv else "coded",
                      percentile=percentile)
    assert isinstance(net, CodedNetwork)  # front="sites" builds one
    return net


def set_synapse(net: nn.Module, synapse: OptoelectronicSynapse | None, seed: int | None = None) -> None:
    """Read every TTFS site of ``net`` through ``synapse`` (e.g. with device variation), sampled
    from one generator seeded ``seed`` (None: the global one). The level tables stay those of the
    nominal curve, so a noise-free synapse of the same curve gives the QNN's values again."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    sites = net.sites() if isinstance(net, CodedNetwork) else {}
    for m in sites.values():
        if hasattr(m, "slot_reads"):
            m.device = synapse  # type: ignore[assignment]  # a TTFSPopulation: its synapse model
            m.generator = g  # type: ignore[assignment]


_REMOVED = {"TTFSBertClassifier", "TTFSBertLayer"}


def __getattr__(name: str) -> Any:
    if name in _REMOVED:
        raise AttributeError(f"isospike.train.ttfs_bert.{name} was removed: the BERT recipe is the general one -- "
                             "student = ttfs_bert(teacher, calibration, timesteps=15, synapse=...) (isospike.convert "
                             "with front='sites', products='binary'), then isospike.train.distill.distill(student, "
                             "teacher, data)")
    raise AttributeError(f"module 'isospike.train.ttfs_bert' has no attribute {name!r}")
