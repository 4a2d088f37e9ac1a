"""Sequences in physical time: frames held for ``frame_ms`` each, sampled at a step ``dt_ms``.

Images become sequences of their rows (the classic "read row by row" task): an image
``[C, H, W]`` is ``H`` frames of ``C * W`` values. A model defined in milliseconds sees the same
signal at any step; only the number of steps per frame changes.
"""

from __future__ import annotations

import math

from torch import Tensor


def rows_as_frames(images: Tensor) -> Tensor:
    """``[N, C, H, W]`` (or ``[N, H, W]``) images -> ``[N, H, C * W]`` frames, one per row."""
    if images.dim() == 3:
        return images
    if images.dim() != 4:
        raise ValueError(f"expected images [N, C, H, W] or [N, H, W], got {tuple(images.shape)}")
    n, c, h, w = images.shape
    return images.permute(0, 2, 1, 3).reshape(n, h, c * w)


def steps_per_frame(frame_ms: float, dt_ms: float) -> int:
    """Number of steps of ``dt_ms`` in a frame; an error when ``dt_ms`` does not divide it."""
    if not (frame_ms > 0 and dt_ms > 0):
        raise ValueError(f"frame_ms and dt_ms must be > 0, got {frame_ms}, {dt_ms}")
    k = frame_ms / dt_ms
    if not math.isclose(k, round(k), rel_tol=1e-9, abs_tol=1e-9) or round(k) < 1:
        raise ValueError(f"dt_ms = {dt_ms} does not divide frame_ms = {frame_ms}: choose dt_ms = frame_ms / k")
    return int(round(k))


def frames_to_steps(frames: Tensor, frame_ms: float, dt_ms: float) -> Tensor:
    """``[N, L, F]`` frames -> ``[L * k, N, F]`` time steps (time first), each frame held for
    ``k = frame_ms / dt_ms`` steps."""
    if frames.dim() != 3:
        raise ValueError(f"expected frames [N, L, F], got {tuple(frames.shape)}")
    k = steps_per_frame(frame_ms, dt_ms)
    return frames.transpose(0, 1).repeat_interleave(k, dim=0)
