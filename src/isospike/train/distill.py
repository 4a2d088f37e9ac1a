"""Knowledge distillation for any model -- the Otters / Otters++ recipe: a converted student (its
spiking forward, straight-through backward) learns a full-precision teacher -- and the sentence
classification set-up (a BERT encoder teacher, its data, evaluation) the TTFS transformer uses.

Distillation loss (Otters++ / Sorbet): soft cross-entropy between student and teacher logits
(temperature 1) plus the mean squared error between every hidden state of the student and of
the teacher (embeddings and each layer output), weighted 1:1; the ground-truth cross-entropy is
added with weight ``ce_weight``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from isospike.batches import model_calls


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


Batch = tuple[tuple, dict, "Tensor | None"]  # (positional args, keyword args, labels or None)


def _encoded_batches(data: Encoded, batch_size: int, seed: int) -> Callable[[int], Iterator[Batch]]:
    """The sentence batches of ``data`` in a seeded order per epoch: (ids, mask) and labels."""
    def batches(epoch: int) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(seed * 100 + epoch)
        perm = torch.randperm(len(data), generator=g)
        for i in range(0, len(data), batch_size):
            ids, mask, y = data.batch(perm[i:i + batch_size])
            yield (ids, mask), {}, y
    return batches


def _input_batches(data: Any, batch_size: int) -> tuple[Callable[[int], Iterator[Batch]], int]:
    """Any inputs :func:`isospike.batches.model_calls` reads, each batch once per epoch; a dict's
    ``labels`` entry is taken out as the targets."""
    calls = list(model_calls(data, batch_size))

    def batches(epoch: int) -> Iterator[Batch]:
        for args, kwargs in calls:
            kwargs = dict(kwargs)
            labels = kwargs.pop("labels", None)
            yield args, kwargs, labels
    return batches, len(calls)


def _loop(model: nn.Module, batches: Callable[[int], Iterator[Batch]], steps_per_epoch: int, epochs: int, lr: float,
          loss_fn: Callable[[tuple, dict, Tensor | None], Tensor], progress: bool, desc: str,
          weight_decay: float = 0.01, scale_lr: float | None = None, max_steps: int | None = None) -> list[float]:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    scales = [p for n, p in trainable if n.endswith(".scale")] if scale_lr is not None else []
    scale_ids = {id(p) for p in scales}
    groups = [{"params": [p for _, p in trainable if id(p) not in scale_ids], "lr": lr}]
    if scales:  # quantizer step sizes: a step of lr would barely move them in one epoch
        groups.append({"params": scales, "lr": scale_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    steps = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(steps - warm, 1)))
    losses = []
    done = 0
    for epoch in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        model.train()
        total, n = 0.0, 0
        for args, kwargs, y in batches(epoch):
            if done >= steps:
                break
            loss = loss_fn(args, kwargs, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            rows = _samples(args, kwargs)
            total += loss.item() * rows
            n += rows
            done += 1
        if n:
            losses.append(total / n)
    model.eval()
    if isinstance(getattr(model, "hidden", None), list):
        # a classifier's kept hidden states of the last training step hang on its autograd graph (memory,
        # and deepcopy refuses them): the trained model keeps none
        setattr(model, "hidden", [])  # noqa: B010
    return losses


def _samples(args: tuple, kwargs: dict) -> int:
    first = next((v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)), None)
    return int(first.shape[0]) if first is not None and first.dim() else 1


def finetune(model: nn.Module, data: Encoded, epochs: int = 2, lr: float = 5e-5, batch_size: int = 32, seed: int = 0,
             progress: bool = True) -> list[float]:
    """Plain cross-entropy fine-tuning (the full-precision teacher)."""
    def loss_fn(args: tuple, kwargs: dict, y: Tensor | None) -> Tensor:
        assert y is not None  # sentence batches carry labels
        return F.cross_entropy(model(*args, **kwargs), y)

    return _loop(model, _encoded_batches(data, batch_size, seed), _steps(len(data), batch_size), epochs, lr, loss_fn,
                 progress, "fine-tuning teacher")


def _steps(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def _logits(out: Any) -> Tensor:
    """The logits of a forward's output: a tensor, ``.logits`` of a Hugging Face output, or the first element."""
    if isinstance(out, Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise TypeError(f"distill: cannot find the logits in a {type(out).__name__} output; the model should return a "
                    "tensor, a (logits, ...) tuple or an output with .logits")


def _hidden(model: nn.Module, out: Any) -> list[Tensor] | None:
    """Hidden states of the last forward: ``.hidden_states`` of the output, or the model's own
    ``.hidden`` (the sentence classifiers here keep them)."""
    states = getattr(out, "hidden_states", None)
    if states is None:
        states = getattr(model, "hidden", None)
    return list(states) if states else None


def _takes_hidden_flag(model: nn.Module) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "output_hidden_states" in params


@contextlib.contextmanager
def _device_noise(model: nn.Module, noise: Any) -> Iterator[None]:
    """Device variation ``noise`` on every TTFS population with a synapse device (sites of a converted
    model), for the block; the nominal devices afterwards."""
    sites = getattr(model, "sites", None)
    populations: list[Any] = [m for m in (sites().values() if callable(sites) else model.modules())
                              if hasattr(getattr(m, "device", None), "with_variation")]
    if noise is not None and not populations:
        raise ValueError("noise-aware distillation varies the synapse devices of TTFS populations, and this student has "
                         "none: convert with coding='ttfs' and synapse=isospike.devices.OptoelectronicSynapse...")
    saved = [m.device for m in populations]
    try:
        if noise is not None:
            for m in populations:
                m.device = m.device.with_variation(noise)
        yield
    finally:
        for m, device in zip(populations, saved):
            m.device = device


def distill(student: nn.Module, teacher: nn.Module, data: Any, epochs: int = 2, lr: float = 5e-5,
            batch_size: int = 32, seed: int = 0, ce_weight: float = 1.0, hidden_weight: float = 1.0,
            progress: bool = True, desc: str = "distilling", scale_lr: float | None = None, noise: Any = None,
            max_steps: int | None = None) -> list[float]:
    """Knowledge distillation for any model (Otters++ / Sorbet): the student -- a network converted
    from the teacher (its spiking forward, straight-through / surrogate backward: hybrid training),
    or a QNN -- learns the teacher's soft outputs and hidden states.

    Loss: soft CE(student, teacher logits) (temperature 1, over every position of a sequence
    model, padding masked) + ``hidden_weight`` x the MSE of every hidden state (the output's
    ``hidden_states`` -- asked with ``output_hidden_states=True`` where the forward takes it -- or
    the model's ``.hidden``) + ``ce_weight`` x CE on labels where the batches carry them.

    ``data``: an :class:`Encoded` set of sentences (shuffled per epoch, ``batch_size``), or any
    inputs :func:`isospike.batches.model_calls` reads -- a dict of keyword arguments (a ``labels``
    entry is taken as the targets), a tensor, a list or DataLoader of them. ``noise``: a
    :class:`isospike.devices.DeviceVariation` sampled on the student's synapse devices at every
    training forward (device-noise-aware training). ``scale_lr``: learning rate of the quantizers'
    step sizes (parameters named ``*.scale``). ``max_steps``: stop after that many optimizer steps.
    Returns the mean loss per epoch."""
    teacher.eval()
    if isinstance(data, Encoded):
        batches, per_epoch = _encoded_batches(data, batch_size, seed), _steps(len(data), batch_size)
    else:
        batches, per_epoch = _input_batches(data, batch_size)
    ask = hidden_weight > 0 and _takes_hidden_flag(student) and _takes_hidden_flag(teacher)

    def loss_fn(args: tuple, kwargs: dict, y: Tensor | None) -> Tensor:
        call = {**kwargs, "output_hidden_states": True} if ask else kwargs
        with torch.no_grad():
            t_out = teacher(*args, **call)
        s_out = student(*args, **call)
        t_logits, s_logits = _logits(t_out), _logits(s_out)
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 and isinstance(args[1], Tensor) else None)
        token_mask = mask.to(s_logits.dtype) if mask is not None and s_logits.dim() == 3 else None
        soft = -(F.softmax(t_logits, -1) * F.log_softmax(s_logits, -1)).sum(-1)
        loss = (soft * token_mask).sum() / token_mask.sum().clamp_min(1) if token_mask is not None else soft.mean()
        s_hidden, t_hidden = _hidden(student, s_out), _hidden(teacher, t_out)
        if hidden_weight > 0 and s_hidden and t_hidden:
            m = mask.unsqueeze(-1).to(s_logits.dtype) if mask is not None else None
            hid = s_logits.new_zeros(())
            for sh, th in zip(s_hidden, t_hidden):
                if m is not None and sh.dim() == 3:
                    hid = hid + ((sh - th) ** 2 * m).sum() / (m.sum() * sh.shape[-1]).clamp_min(1)
                else:
                    hid = hid + F.mse_loss(sh, th)
            loss = loss + hidden_weight * hid
        if y is not None and ce_weight:
            loss = loss + ce_weight * F.cross_entropy(s_logits, y)
        return loss

    with _device_noise(student, noise):
        return _loop(student, batches, per_epoch, epochs, lr, loss_fn, progress, desc, scale_lr=scale_lr,
                     max_steps=max_steps)
