import numpy as np
import pytest
import torch

from isospike.coding import spatial_bits


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int16])
def test_bijection_on_every_16bit_pattern(dtype):
    x = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    spikes = spatial_bits.encode(x)
    assert spikes.shape == (65536, 16) and spikes.dtype == torch.bool
    assert torch.equal(spatial_bits.decode(spikes, dtype).view(torch.int16), x.view(torch.int16))
    assert len({tuple(r) for r in spikes[::97].tolist()}) == len(spikes[::97])  # distinct codes


def test_float32_round_trip_with_specials_and_bit_layout():
    bits = np.random.default_rng(0).integers(0, 2**32, 100000, dtype=np.uint64).astype(np.uint32)
    x = torch.from_numpy(bits.view(np.float32).copy())
    x[:4] = torch.tensor([float("nan"), float("-inf"), -0.0, 1e-45])
    s = spatial_bits.encode(x)
    assert torch.equal(spatial_bits.decode(s, torch.float32).view(torch.int32), x.view(torch.int32))
    one = spatial_bits.encode(torch.tensor([1.0]))[0].int().tolist()
    assert one == [0] + [0, 1, 1, 1, 1, 1, 1, 1] + [0] * 23  # sign, exponent 127, fraction 0
    assert spatial_bits.encode(torch.tensor([-2.0]), bit_order="lsb")[0, 31]  # sign on the last line


def test_integers_and_errors():
    x = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    assert torch.equal(spatial_bits.decode(spatial_bits.encode(x), torch.int8), x)
    big = torch.tensor([-(2**63), 2**63 - 1, 5])
    assert torch.equal(spatial_bits.decode(spatial_bits.encode(big), torch.int64), big)
    with pytest.raises(TypeError, match="spatial bit coding supports"):
        spatial_bits.encode(torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="16 spike lines"):
        spatial_bits.decode(torch.zeros(3, 8, dtype=torch.bool), torch.float16)
