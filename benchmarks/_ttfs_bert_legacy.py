"""The former hand-written TTFS BERT classifier (isospike.train.ttfs_bert.TTFSBertClassifier until
issue 31), kept for the Matterhorn benchmarks only (benchmarks/mttfs.py, benchmarks/glue_like.py):
they mask and dead-zone its TTFSQuant activations with isospike.train.ttfs.mask_ttfs, which the
general site path does not do yet. The library's BERT recipe is the general one
(isospike.train.ttfs_bert.ttfs_bert: isospike.convert(front="sites", products="binary") +
isospike.train.distill.distill); benchmarks/ttfs.py runs it.

Formerly: a BERT encoder classifier with TTFS coding on every activation that crosses a layer
(Otters / Otters++ applied to a Hugging Face BertModel such as all-MiniLM-L6-v2).

Per encoder layer (activations signed after LayerNorm use two TTFS channels):

    h_q = TTFS(h)                       input of the Q/K/V projections  (signed)
    q, k, v = W_q h_q, W_k h_q, W_v h_q
    q_q = TTFS(q)                       (signed)
    k_b, v_b = sign(k) |k|_mean, sign(v) |v|_mean   1-bit K and V per head (Otters): the attention
                                        products become sign-selected additions
    p = softmax(q_q k_b^T / sqrt(d) + mask)           digital
    c = TTFS(p) v_b                     probabilities unsigned TTFS
    h1 = LayerNorm(W_o TTFS(c) + h)     digital LayerNorm and residual addition
    f = act(W_1 TTFS(h1))               ReLU by default (non-negative, one channel), or GELU
    h2 = LayerNorm(W_2 TTFS(f) + h1)

Embeddings (lookups, additions, LayerNorm), softmax, LayerNorm, residual additions and the mean
pooling stay digital: they are counted as non-spiking operations. Weights stay float32 (Otters
uses 1-bit weights; that needs far longer distillation than a CPU budget allows).

``model.spiking(True)`` runs every TTFS activation as its spiking population (device-faithful);
:func:`isospike.counting` then observes its spikes, synaptic events and digital operations per
layer for the energy model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isospike.activity import LayerActivity
from isospike.devices import OptoelectronicSynapse, resolve_synapse
from isospike.devices.arguments import _UNSET
from isospike.train.ttfs import TTFSQuant


def binarize_per_head(x: Tensor) -> Tensor:
    """sign(x) * mean|x| over each head's vector (last dim), straight-through gradient."""
    scale = x.abs().mean(-1, keepdim=True)
    b = torch.where(x >= 0, scale, -scale)
    return x + (b - x).detach()


class TTFSBertLayer(nn.Module):
    def __init__(self, layer: nn.Module, T: int, activation: str, device: OptoelectronicSynapse | None,
                 binary_kv: bool = True) -> None:
        super().__init__()
        bert_layer: Any = layer  # a transformers BertLayer: nn.Module does not type its submodules and attributes
        att = bert_layer.attention.self
        self.heads: int = att.num_attention_heads
        self.head_dim: int = att.attention_head_size
        self.q: nn.Linear = copy.deepcopy(att.query)
        self.k: nn.Linear = copy.deepcopy(att.key)
        self.v: nn.Linear = copy.deepcopy(att.value)
        self.o: nn.Linear = copy.deepcopy(bert_layer.attention.output.dense)
        self.ln1: nn.LayerNorm = copy.deepcopy(bert_layer.attention.output.LayerNorm)
        self.ff1: nn.Linear = copy.deepcopy(bert_layer.intermediate.dense)
        self.ff2: nn.Linear = copy.deepcopy(bert_layer.output.dense)
        self.ln2: nn.LayerNorm = copy.deepcopy(bert_layer.output.LayerNorm)
        self.activation = activation
        self.binary_kv = binary_kv
        q: dict[str, Any] = dict(timesteps=T, synapse=device)
        self.q_in = TTFSQuant(scale=0.1, signed=True, **q)
        self.q_query = TTFSQuant(scale=0.1, signed=True, **q)
        self.q_probs = TTFSQuant(scale=1.0 / T, signed=False, learn_scale=False, **q)
        self.q_ctx = TTFSQuant(scale=0.1, signed=True, **q)
        self.q_ff_in = TTFSQuant(scale=0.1, signed=True, **q)
        self.q_ff_mid = TTFSQuant(scale=0.1, signed=activation != "relu", **q)

    def forward(self, h: Tensor, mask: Tensor, record=None) -> Tensor:
        B, S, D = h.shape
        H, d = self.heads, self.head_dim

        def heads(t: Tensor) -> Tensor:
            return t.reshape(B, S, H, d).transpose(1, 2)

        hq = self.q_in(h)
        q, k, v = heads(self.q_query(self.q(hq))), heads(self.k(hq)), heads(self.v(hq))
        if self.binary_kv:
            k, v = binarize_per_head(k), binarize_per_head(v)
        scores = q @ k.transpose(-1, -2) * (d ** -0.5) + mask
        probs = self.q_probs(torch.softmax(scores, -1))
        ctx = (probs @ v).transpose(1, 2).reshape(B, S, D)
        cq = self.q_ctx(ctx)
        h1 = self.ln1(self.o(cq) + h)
        fin = self.q_ff_in(h1)
        mid = F.relu(self.ff1(fin)) if self.activation == "relu" else F.gelu(self.ff1(fin))
        mid_q = self.q_ff_mid(mid)
        out = self.ln2(self.ff2(mid_q) + h1)
        if record is not None:
            for x, lin, src in ((hq, self.q, self.q_in), (hq, self.k, self.q_in), (hq, self.v, self.q_in),
                                (cq, self.o, self.q_ctx), (fin, self.ff1, self.q_ff_in), (mid_q, self.ff2, self.q_ff_mid)):
                record(x, lin, True, src.silent_value())
            record.attention(q, probs, S, d, self.q_query.silent_value(), self.q_probs.silent_value())
            # softmax (exp, sum, divide) on the scores, two LayerNorms and two residual additions,
            # about 3 and 6 operations per element: digital, non-spiking
            record.digital(B, 3 * B * H * S * S + 2 * 6 * B * S * D)
        return out


class TTFSBertClassifier(nn.Module):
    """Mean-pooled BERT encoder + linear head with TTFS-coded activations (see module docstring).

    Build from a (fine-tuned) ``transformers`` BertModel and head: ``TTFSBertClassifier(bert,
    head, timesteps=15)``. ``forward(input_ids, attention_mask) -> logits [batch, classes]``;
    ``hidden_states`` of the last forward are kept in ``.hidden`` (for distillation)."""

    def __init__(self, bert: nn.Module, head: nn.Linear, timesteps: int = 15, activation: str = "relu",
                 synapse: OptoelectronicSynapse | None = _UNSET, binary_kv: bool = True, device: Any = _UNSET) -> None:
        super().__init__()
        device = resolve_synapse(synapse, device, "TTFSBertClassifier")
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        bert_model: Any = bert  # a transformers BertModel: nn.Module does not type its submodules
        self.embeddings: nn.Module = copy.deepcopy(bert_model.embeddings)
        self.layers = nn.ModuleList(TTFSBertLayer(layer, timesteps, activation, device, binary_kv)
                                    for layer in bert_model.encoder.layer)
        self.q_pool = TTFSQuant(timesteps, 0.05, signed=True, synapse=device)
        self.head = copy.deepcopy(head)
        self.timesteps = timesteps
        self.hidden: list[Tensor] = []
        self._sinks: list[Callable[[LayerActivity], None]] = []  # attached by isospike.counting

    # ---------------------------------------------------------------- spiking mode and counts
    def quantizers(self) -> dict[str, TTFSQuant]:
        return {n: m for n, m in self.named_modules() if isinstance(m, TTFSQuant)}

    def spiking(self, on: bool = True) -> TTFSBertClassifier:
        """Run every TTFS activation as its spiking population (True), or as the QNN."""
        for m in self.quantizers().values():
            m.spiking = on
        return self

    def attach_activity_sink(self, sink: Callable[[LayerActivity], None]) -> Callable[[], None]:
        """Send the rows only the forward sees (synapse layers fed by TTFS values, attention,
        digital operations) to ``sink`` after each spiking call; returns the detacher (used by
        :func:`isospike.counting`; the TTFS populations themselves are observed directly)."""
        self._sinks.append(sink)
        return lambda: self._sinks.remove(sink)

    @torch.no_grad()
    def init_scales(self, input_ids: Tensor, attention_mask: Tensor, percentile: float = 99.9) -> None:
        """Set each TTFS step to (percentile of |activation|) / T on a calibration batch."""
        samples: dict[TTFSQuant, Tensor] = {}
        hooks = [m.register_forward_hook(lambda mod, i, o: samples.__setitem__(mod, i[0].detach().abs().flatten()))
                 for m in self.quantizers().values() if m.scale.requires_grad]
        try:
            self.eval()(input_ids, attention_mask)
        finally:
            for h in hooks:
                h.remove()
        for m, v in samples.items():
            if len(v) > 1_000_000:
                v = v[torch.randperm(len(v), generator=torch.Generator().manual_seed(0))[:1_000_000]]
            top = float(torch.quantile(v.float(), percentile / 100))
            m.scale.data.fill_(max(top, 1e-4) / m.timesteps)

    # ---------------------------------------------------------------- forward
    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        B, S = input_ids.shape
        h = self.embeddings(input_ids=input_ids)
        mask = torch.where(attention_mask[:, None, None, :].bool(), 0.0, torch.finfo(torch.float32).min)
        self.hidden = [h]
        spiking = any(m.spiking for m in self.quantizers().values())
        record = _Recorder(self) if self._sinks and spiking else None
        for i, layer in enumerate(self.layers):
            if record is not None:
                record.prefix = f"layers.{i}"
            h = layer(h, mask, record)
            self.hidden.append(h)
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1)
        pq = self.q_pool(pooled)
        if record is not None:
            record.prefix = ""
            record(pq, self.head, True, self.q_pool.silent_value())
            for row in record.rows.values():
                for sink in list(self._sinks):
                    sink(row)
        return self.head(pq)


class _Recorder:
    """Accumulates one spiking call's per-layer synaptic and digital operation counts."""

    def __init__(self, model: TTFSBertClassifier) -> None:
        self.model = model
        self.prefix = ""
        self.rows: dict[str, LayerActivity] = {}

    def _stat(self, name: str, kind: str) -> LayerActivity:
        return self.rows.setdefault(name, LayerActivity(name, kind))

    def __call__(self, x: Tensor | None, linear: nn.Linear | None, reads_device: bool, silent: float = 0.0) -> None:
        """Count a synaptic layer driven by TTFS values ``x``; entries equal to ``silent`` (the
        value silence stands for: 0, or the silent level of M-TTFS) are no spike and no event --
        the receiver holds their contribution in its bias."""
        if x is None or linear is None:
            return
        name = f"{self.prefix}.{self._name(linear)}" if self.prefix else self._name(linear)
        st = self._stat(name, "ac")
        nonzero = int((x != silent).sum())
        st.synaptic_ops += nonzero * linear.out_features
        st.dense_ops += x.numel() * linear.out_features
        st.input_events += nonzero
        st.outputs += linear.out_features * x[..., 0].numel()
        st.parameters = linear.weight.numel()
        st.samples += x.shape[0]
        if reads_device and any(m.device is not None for m in self.model.quantizers().values()):
            st.device_reads += nonzero * linear.out_features

    def _name(self, module: nn.Module) -> str:
        for n, m in self.model.named_modules():
            if m is module:
                return n.split(".")[-1] if self.prefix else n
        return "linear"

    def attention(self, q: Tensor, probs: Tensor, S: int, d: int, silent_q: float = 0.0, silent_p: float = 0.0) -> None:
        st = self._stat(f"{self.prefix}.attention", "ac")
        nz_q, nz_p = int((q != silent_q).sum()), int((probs != silent_p).sum())
        st.synaptic_ops += nz_q * S + nz_p * d  # sign-selected additions with 1-bit K and V
        st.dense_ops += q.numel() * S + probs.numel() * d
        st.input_events += nz_q + nz_p
        st.samples += q.shape[0]

    def digital(self, batch: int, ops: int) -> None:
        st = self._stat(f"{self.prefix}.digital", "mac")
        st.synaptic_ops += ops
        st.dense_ops += ops
        st.samples += batch


def set_noise(model: TTFSBertClassifier, device: OptoelectronicSynapse, seed: int | None = None) -> None:
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    for m in model.quantizers().values():
        m.device = device
        m.generator = g
        object.__setattr__(m, "population", None)


@torch.no_grad()
def noisy_accuracy(model: TTFSBertClassifier, data, device: OptoelectronicSynapse, runs: int) -> tuple[float, float]:
    import numpy as np

    from isospike.train.distill import evaluate

    accs = []
    model.spiking(True)
    for r in range(runs):
        set_noise(model, device, seed=1000 + r)
        accs.append(evaluate(model, data))
    model.spiking(False)
    return float(np.mean(accs)), float(np.std(accs))
