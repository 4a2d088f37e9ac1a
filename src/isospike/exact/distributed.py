"""Sharded exact evaluation with ``torch.distributed``: the matrix products of a model split by
output columns across the ranks of a process group, the results gathered.

    torch.distributed.init_process_group("gloo")          # or "nccl" on GPUs; torchrun sets the rest
    snn = isospike.exact.convert(model, shard=True)        # every rank runs the same forward
    y = snn(x)                                             # identical on every rank, and to one process

Every output element of a product is still the pairwise tree over its own k products, computed
whole on one rank, so sharding changes where an element is computed, never its bits. Everything
else (elementwise operations, softmax, norms) runs on every rank: matrix products are where
the gates are (96% of an LLM's prefill time here). Without an initialized process group
``shard=True`` is the single-process computation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def active() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def column_range(m: int, rank: int, world: int) -> tuple[int, int]:
    """The output columns [lo, hi) of rank ``rank``: contiguous, sizes differing by at most one."""
    base, extra = divmod(m, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def sharded_columns(compute: Callable[[Tensor], Tensor], b: Tensor) -> Tensor:
    """``compute(b)`` for a right operand ``b [..., k, m]`` whose result's last dimension is ``m``:
    each rank computes its columns, all ranks gather all of them (in column order)."""
    rank, world = active()
    m = b.shape[-1]
    if world == 1 or m < world:
        return compute(b)
    lo, hi = column_range(m, rank, world)
    part = compute(b[..., lo:hi]).contiguous()
    width = -(-m // world)  # gather equal sizes: pad, then cut
    padded = torch.zeros(*part.shape[:-1], width, dtype=part.dtype, device=part.device)
    padded[..., : hi - lo] = part
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    pieces = [g[..., : column_range(m, r, world)[1] - column_range(m, r, world)[0]] for r, g in enumerate(gathered)]
    return torch.cat(pieces, dim=-1)


def scaling_model(gate_evaluations_per_token: float, lane_gates_per_second: float, ranks: int,
                  product_share: float) -> dict[str, Any]:
    """Seconds per token on ``ranks`` workers when the ``product_share`` of the gate work (matrix
    products) divides across them and the rest is repeated on each: Amdahl's law on the measured
    per-worker throughput (lane-gates per second). Communication is not modelled."""
    serial = gate_evaluations_per_token * (1 - product_share)
    parallel = gate_evaluations_per_token * product_share / ranks
    return {"ranks": ranks, "seconds_per_token": (serial + parallel) / lane_gates_per_second,
            "speedup": gate_evaluations_per_token / (serial + parallel)}
