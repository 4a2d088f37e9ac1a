"""Sentence classification with a BERT encoder: a full-precision teacher, knowledge distillation
into a quantized (TTFS-equivalent) student, and evaluation -- the Otters / Otters++ recipe on a
CPU budget.

Distillation loss (Otters++ / Sorbet): soft cross-entropy between student and teacher logits
(temperature 1) plus the mean squared error between every hidden state of the student and of
the teacher (embeddings and each layer output), weighted 1:1; the ground-truth cross-entropy is
added with weight ``ce_weight``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm


@dataclass
class Encoded:
    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # trim the padding shared by the whole batch (speed)
        m = self.attention_mask[idx]
        length = int(m.sum(1).max())
        return self.input_ids[idx, :length], m[:, :length], self.labels[idx]


def encode_texts(tokenizer: Any, texts: list[str], labels: np.ndarray, max_length: int = 64) -> Encoded:
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return Encoded(enc["input_ids"], enc["attention_mask"], torch.as_tensor(labels, dtype=torch.long))


class BertClassifier(nn.Module):
    """Teacher: a BertModel, mean pooling over the attention mask, a linear head. Keeps the
    hidden states of the last forward in ``.hidden`` (embeddings and every layer)."""

    def __init__(self, bert: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.bert = bert
        config: Any = bert.config  # a transformers PretrainedConfig (nn.Module does not type it)
        self.head = nn.Linear(config.hidden_size, num_classes)
        self.hidden: list[Tensor] = []

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        self.hidden = list(out.hidden_states)
        h = out.last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1).clamp_min(1))


@torch.no_grad()
def evaluate(model: nn.Module, data: Encoded, batch_size: int = 64) -> float:
    """Top-1 accuracy in [0, 1]."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        ids, mask, y = data.batch(torch.arange(i, min(i + batch_size, len(data))))
        correct += int((model(ids, mask).argmax(-1) == y).sum())
    model.train(was)
    return correct / max(len(data), 1)


def _loop(model: nn.Module, data: Encoded, epochs: int, lr: float, batch_size: int, seed: int, loss_fn, progress: bool,
          desc: str, weight_decay: float = 0.01, scale_lr: float | None = None) -> list[float]:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    scales = [p for n, p in trainable if n.endswith(".scale")] if scale_lr is not None else []
    scale_ids = {id(p) for p in scales}
    groups = [{"params": [p for _, p in trainable if id(p) not in scale_ids], "lr": lr}]
    if scales:  # quantizer step sizes: a step of lr would barely move them in one epoch
        groups.append({"params": scales, "lr": scale_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(data) + batch_size - 1) // batch_size)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(steps - warm, 1)))
    losses = []
    for epoch in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        model.train()
        g = torch.Generator().manual_seed(seed * 100 + epoch)
        perm = torch.randperm(len(data), generator=g)
        total, n = 0.0, 0
        for i in range(0, len(data), batch_size):
            ids, mask, y = data.batch(perm[i:i + batch_size])
            loss = loss_fn(ids, mask, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            n += len(y)
        losses.append(total / n)
    model.eval()
    return losses


def finetune(model: nn.Module, data: Encoded, epochs: int = 2, lr: float = 5e-5, batch_size: int = 32, seed: int = 0,
             progress: bool = True) -> list[float]:
    """Plain cross-entropy fine-tuning (the full-precision teacher)."""
    return _loop(model, data, epochs, lr, batch_size, seed, lambda ids, m, y: F.cross_entropy(model(ids, m), y),
                 progress, "fine-tuning teacher")


def distill(student: nn.Module, teacher: nn.Module, data: Encoded, epochs: int = 2, lr: float = 5e-5,
            batch_size: int = 32, seed: int = 0, ce_weight: float = 1.0, hidden_weight: float = 1.0,
            progress: bool = True, desc: str = "distilling", scale_lr: float | None = None) -> list[float]:
    """Knowledge distillation: soft CE(student, teacher logits) + hidden-state MSE + ce_weight * CE.

    ``scale_lr``: learning rate of the quantizers' step sizes (parameters named ``*.scale``;
    default: ``lr`` like the rest)."""
    teacher.eval()

    def loss_fn(ids: Tensor, mask: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            t_logits = teacher(ids, mask)
            t_hidden = cast(list[Tensor], teacher.hidden)  # set by every forward of BertClassifier / TTFSBertClassifier
        s_logits = student(ids, mask)
        s_hidden = cast(list[Tensor], student.hidden)
        soft = -(F.softmax(t_logits, -1) * F.log_softmax(s_logits, -1)).sum(-1).mean()
        m = mask.unsqueeze(-1).to(s_logits.dtype)
        hid = sum(((sh - th) ** 2 * m).sum() / (m.sum() * sh.shape[-1]) for sh, th in zip(s_hidden, t_hidden))
        return soft + hidden_weight * hid + ce_weight * F.cross_entropy(s_logits, y)

    return _loop(student, data, epochs, lr, batch_size, seed, loss_fn, progress, desc, scale_lr=scale_lr)
