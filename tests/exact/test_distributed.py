"""Sharded exact evaluation: two gloo ranks on localhost split every matrix product by output
columns; their output equals one process's bit for bit."""

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

import isospike as isp
from isospike.exact.distributed import column_range, scaling_model


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 13), nn.GELU(), nn.LayerNorm(13), nn.Linear(13, 5), nn.Softmax(-1)).eval()


def _inputs() -> torch.Tensor:
    return torch.randn(3, 6, generator=torch.Generator().manual_seed(1))


def _rank(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        snn = isp.exact.convert(_model(), shard=True)
        y = snn(_inputs())
        np.save(f"{out}-{rank}.npy", y.view(torch.int32).numpy())
        np.save(f"{out}-{rank}-mul.npy", np.array([snn.counts().by_op["mul"].lanes]))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_give_one_process_bits(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    out = str(tmp_path / "y")
    mp.spawn(_rank, args=(2, _free_port(), out), nprocs=2, join=True)
    single = isp.exact.convert(_model())
    want = single(_inputs()).view(torch.int32).numpy()
    for rank in range(2):
        assert np.array_equal(np.load(f"{out}-{rank}.npy"), want)
    # each rank multiplied only its share of the matrix products (elementwise products run on both)
    shares = [int(np.load(f"{out}-{r}-mul.npy")[0]) for r in range(2)]
    assert all(0 < s < single.counts().by_op["mul"].lanes for s in shares)


def test_column_split_and_scaling_model():
    assert [column_range(10, r, 3) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    one = scaling_model(1e12, 1e11, 1, 0.96)
    eight = scaling_model(1e12, 1e11, 8, 0.96)
    assert one["seconds_per_token"] == pytest.approx(10.0) and 1 < eight["speedup"] < 8
