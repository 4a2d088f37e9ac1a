"""The registry of codings: one name, one conversion function."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn

Converter = Callable[..., nn.Module]
_CODINGS: dict[str, Converter] = {}


def register_coding(name: str, converter: Converter) -> None:
    """Register ``converter(model, *, timesteps, calibration, **options)`` under ``name``."""
    if name in _CODINGS and _CODINGS[name] is not converter:
        raise ValueError(f"coding {name!r} is already registered")
    _CODINGS[name] = converter


def codings() -> list[str]:
    """Names of the registered codings, sorted."""
    return sorted(_CODINGS)


def get_converter(name: str) -> Converter:
    try:
        return _CODINGS[name]
    except KeyError:
        raise ValueError(f"unknown coding {name!r}; available: {', '.join(codings())}") from None


def convert(model: nn.Module, coding: str = "rate", *, timesteps: int | None = None, calibration: Any = None,
            **options: Any) -> nn.Module:
    """Convert an ANN into a spiking network with the named coding.

    Args:
        model: the ANN (an ``nn.Module``; it is copied, never modified).
        coding: one of :func:`codings` ("rate", ...).
        timesteps: simulation length T (each coding documents its default).
        calibration: inputs used to measure thresholds/levels: a tensor, an ``(inputs, targets)``
            pair or an iterable of batches.
        options: coding-specific options (see each coding's converter).

    Returns the spiking network; ``snn(x)`` gives the decoded output, shaped like ``model(x)``.
    Raises :class:`isospike.UnsupportedLayerError` naming any layer the coding cannot convert.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    converter = get_converter(coding)
    kwargs: dict[str, Any] = dict(options)
    if timesteps is not None:
        if isinstance(timesteps, bool) or not isinstance(timesteps, numbers.Real) or not math.isfinite(timesteps) \
                or int(timesteps) != timesteps or timesteps < 1:
            raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
        kwargs["timesteps"] = int(timesteps)
    if isinstance(calibration, Iterator):  # a generator is read more than once (statistics, tracing)
        calibration = list(calibration)
    return converter(model, calibration=calibration, **kwargs)
