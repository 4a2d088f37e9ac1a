"""The ``synapse=`` argument of the TTFS conversion and training APIs, and the ``device=`` it
replaces: in PyTorch ``device`` means where tensors live (``"cuda"``), not a synapse model."""

from __future__ import annotations

import warnings
from typing import Any

import torch

_UNSET: Any = object()


def resolve_synapse(synapse: Any, device: Any, api: str) -> Any:
    """The synapse model to use, given ``synapse=`` and the deprecated ``device=``.

    ``device=`` holding a synapse model still works for one release, with a DeprecationWarning;
    ``device=`` holding a torch device (``"cuda"``, ``torch.device``) is a TypeError pointing to
    ``.to(device)``; both at once is a TypeError."""
    if device is _UNSET:
        return None if synapse is _UNSET else synapse
    if isinstance(device, (str, torch.device)):
        raise TypeError(f"{api}: device={device!r} looks like a torch device, but this argument has never chosen "
                        "where tensors live; run the network there with .to(device), and pass the synapse model as "
                        "synapse=... (e.g. isospike.devices.OptoelectronicSynapse.in2o3())")
    if synapse is not _UNSET:
        raise TypeError(f"{api}: pass the synapse model once, as synapse=... (device= is its old name)")
    warnings.warn(f"{api}: device= is renamed synapse= (device means a torch device in PyTorch); "
                  "device= will be removed in the next release", DeprecationWarning, stacklevel=3)
    return device
