"""Hugging Face BERT encoders (``transformers`` BertModel) through the pinned algorithms.

The computation follows BertModel in eval mode: embeddings (three table lookups, two additions,
LayerNorm), then per layer: Q/K/V projections, scores Q K^T times 1/sqrt(head size), the
additive attention mask (0 or the float32 minimum, as transformers builds it), softmax,
probabilities times V, output projection, residual addition and LayerNorm, intermediate
projection and activation, output projection, residual addition and LayerNorm; the optional
pooler is a projection of the first token followed by tanh.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from isospike.errors import UnsupportedLayerError
from isospike.exact import functions as fn
from isospike.exact.layers import ExactLayer

_ACT = {"gelu": ("none",), "gelu_new": ("tanh",), "gelu_pytorch_tanh": ("tanh",), "relu": (), "silu": (), "swish": ()}


def _w(m: nn.Linear, A) -> tuple[Tensor, Tensor | None]:
    if A.native:
        return m.weight, m.bias
    return m.weight.detach(), (None if m.bias is None else m.bias.detach())


def _ln(A, ln: nn.LayerNorm, x: Tensor) -> Tensor:
    w = ln.weight if A.native else ln.weight.detach()
    b = ln.bias if A.native else ln.bias.detach()
    return fn.layer_norm(A, x, ln.normalized_shape, w, b, ln.eps)


def _activation(A, name: str, x: Tensor) -> Tensor:
    if name in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        return fn.gelu(A, x, approximate=_ACT[name][0])
    if name == "relu":
        return fn.relu(A, x)
    if name in ("silu", "swish"):
        return fn.silu(A, x)
    raise AssertionError(name)


def additive_mask(attention_mask: Tensor | None, batch: int, seq: int) -> Tensor:
    """[batch, 1, 1, seq] float32: 0 where attended, the float32 minimum where masked."""
    if attention_mask is None:
        attention_mask = torch.ones(batch, seq, dtype=torch.long)
    keep = attention_mask[:, None, None, :].to(torch.bool)
    return torch.where(keep, torch.tensor(0.0), torch.tensor(torch.finfo(torch.float32).min))


class ExactBertLayer(ExactLayer):
    """One ``BertLayer`` (self-attention block and feed-forward block)."""

    def __init__(self, native: nn.Module, arith, count: bool = True) -> None:
        super().__init__(native, arith, count)
        cfg = native.attention.self.config
        act = cfg.hidden_act if isinstance(cfg.hidden_act, str) else None
        if act not in _ACT:
            raise UnsupportedLayerError(f"BertLayer(hidden_act={cfg.hidden_act!r})", "", "exact",
                                        f"supported activations: {sorted(_ACT)}")
        if getattr(cfg, "is_decoder", False):
            raise UnsupportedLayerError("BertLayer(is_decoder=True)", "", "exact", "only encoders are supported")
        self.act = act

    def compute(self, A, hidden: Tensor, mask: Tensor) -> Tensor:
        m = self.native
        att = m.attention.self
        B, S, _ = hidden.shape
        H, d = att.num_attention_heads, att.attention_head_size

        def heads(lin: nn.Linear) -> Tensor:
            return fn.linear(A, hidden, *_w(lin, A)).reshape(B, S, H, d).transpose(1, 2)

        q, k, v = heads(att.query), heads(att.key), heads(att.value)
        scores = fn.matmul(A, q, k.transpose(-1, -2))
        scores = A.mul(scores, fn.const(scores, float(torch.tensor(d ** -0.5, dtype=torch.float32))))
        scores = A.add(scores, mask.expand_as(scores))
        probs = fn.softmax(A, scores, -1)
        ctx = fn.matmul(A, probs, v).transpose(1, 2).reshape(B, S, H * d)
        so = m.attention.output
        h1 = _ln(A, so.LayerNorm, A.add(fn.linear(A, ctx, *_w(so.dense, A)), hidden))
        inter = _activation(A, self.act, fn.linear(A, h1, *_w(m.intermediate.dense, A)))
        out = m.output
        return _ln(A, out.LayerNorm, A.add(fn.linear(A, inter, *_w(out.dense, A)), h1))


class ExactBertEmbeddings(ExactLayer):
    """Word + token type + position embeddings (lookups: no arithmetic), added, LayerNorm."""

    def compute(self, A, input_ids: Tensor, token_type_ids: Tensor | None) -> Tensor:
        m = self.native
        B, S = input_ids.shape
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(S).unsqueeze(0).expand(B, S)
        words = m.word_embeddings(input_ids)
        types = m.token_type_embeddings(token_type_ids)
        pos = m.position_embeddings(positions)
        if not A.native:
            words, types, pos = words.detach(), types.detach(), pos.detach()
        return _ln(A, m.LayerNorm, A.add(A.add(words, types), pos))


class ExactBertPooler(ExactLayer):
    def compute(self, A, hidden: Tensor) -> Tensor:
        return fn.tanh(A, fn.linear(A, hidden[:, 0], *_w(self.native.dense, A)))


class ExactBertModel(nn.Module):
    """A ``transformers`` BertModel computed through ``arith``.

    ``forward(input_ids, attention_mask=None, token_type_ids=None)`` returns a
    ``BaseModelOutputWithPooling`` (``last_hidden_state`` [batch, seq, hidden] float32,
    ``pooler_output`` [batch, hidden] or None)."""

    def __init__(self, model: nn.Module, arith, count: bool = True) -> None:
        super().__init__()
        self.config = model.config
        self.arith = arith
        self.embeddings = ExactBertEmbeddings(model.embeddings, arith, count)
        self.layers = nn.ModuleList(ExactBertLayer(layer, arith, count) for layer in model.encoder.layer)
        self.pooler = ExactBertPooler(model.pooler, arith, count) if model.pooler is not None else None

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, **unused: Any):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        B, S = input_ids.shape
        h = self.embeddings(input_ids, token_type_ids)
        mask = additive_mask(attention_mask, B, S)
        for layer in self.layers:
            h = layer(h, mask)
        pooled = self.pooler(h) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=h, pooler_output=pooled)


def is_bert_model(model: nn.Module) -> bool:
    return type(model).__name__ == "BertModel" and hasattr(model, "encoder") and hasattr(model, "embeddings")


def is_bert_layer(model: nn.Module) -> bool:
    return type(model).__name__ == "BertLayer" and hasattr(model, "attention") and hasattr(model, "intermediate")


def mean_pooling(A, last_hidden_state: Tensor, attention_mask: Tensor) -> Tensor:
    """sentence-transformers' mean pooling through ``A``: sum over attended tokens (pairwise
    tree over the sequence) divided by their count. [batch, seq, hidden] -> [batch, hidden]."""
    mask = attention_mask.to(last_hidden_state.dtype).unsqueeze(-1).expand_as(last_hidden_state)
    total = fn.tree_sum(A, A.mul(last_hidden_state, mask), 1)
    count = fn.tree_sum(A, attention_mask.to(last_hidden_state.dtype), 1).unsqueeze(-1)
    return A.div(total, count.expand_as(total))
