"""Fine-tuning a converted network through its own spiking forward pass.

A network from :func:`isospike.convert` is differentiable: IF spikes carry an arctangent surrogate
gradient (:mod:`isospike.neurons.surrogate`), TTFS / M-TTFS and sigma-delta levels a
straight-through one, and the gradient flows back through all T steps (backpropagation through
time over the time-folded graph). So the recipe snnTorch, SpikingJelly and Norse users know --
spiking forward, surrogate backward, cross-entropy on the decoded output -- applies to a converted
network as it is: its weights and biases are trained, its thresholds (conversion's calibration)
stay fixed, and it keeps computing its inference function (no Dropout, frozen BatchNorm folds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from isospike.train.classifier import TrainingHistory, fit_classifier


def finetune_spiking(snn: nn.Module, train: Any, *, epochs: int = 1, lr: float = 1e-4, weight_decay: float = 0.0,
                     batch_size: int = 64, seed: int = 0, validation: Any = None, progress: bool = True,
                     augment: Callable[[Tensor, Any], Tensor] | None = None) -> TrainingHistory:
    """Train ``snn`` (a network from :func:`isospike.convert`, any time-coded coding) in place on
    labelled ``train`` data through its spiking forward pass at its own ``timesteps`` (see the
    module docstring): AdamW + cosine decay on the cross-entropy of the decoded output.

    ``train`` / ``validation``: (x, y) pairs, LabelledData or DataLoaders of (x, y) batches. A small
    learning rate (1e-4) adjusts a converted network without undoing its conversion. Returns the
    loss and accuracy per epoch; deterministic for a given ``seed``."""
    from isospike.conversion.network import SpikingNetwork

    if not isinstance(snn, SpikingNetwork):
        raise TypeError(f"finetune_spiking trains a network from isospike.convert, got {type(snn).__name__}; "
                        "train an ANN with isospike.train.fit_classifier")
    if not any(p.requires_grad for p in snn.parameters()):
        raise ValueError("the network has no trainable parameter (requires_grad is off on all of them): "
                         "call p.requires_grad_(True) on those to train")
    return fit_classifier(snn, train, epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                          seed=seed, validation=validation, progress=progress, augment=augment)


__all__ = ["finetune_spiking"]
