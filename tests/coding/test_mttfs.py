import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from isospike.coding import mttfs, ttfs

T = 15


@given(st.integers(0, T), st.integers(0, 2**31 - 1))
def test_unsigned_decode_equals_plain_ttfs_for_any_silent_level(m, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(300, generator=g) * 1.8 - 0.1
    spikes = mttfs.encode(x, T, 0.1, silent_level=m)
    assert torch.equal(mttfs.decode(spikes, 0.1, silent_level=m), ttfs.decode(ttfs.encode(x, T, 0.1), 0.1))
    assert bool((spikes.sum(0) <= 1).all())  # at most one spike per neuron


@given(st.integers(-T, T), st.integers(0, 2**31 - 1))
def test_signed_decode_is_exact(m, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(300, generator=g)
    spikes = mttfs.encode(x, T, 0.1, silent_level=m, signed=True)
    q = ttfs.levels(x.abs(), T, 0.1)
    assert torch.equal(mttfs.decode(spikes, 0.1, silent_level=m, signed=True), torch.where(x < 0, -q, q).float() * 0.1)
    assert bool((spikes.sum((0, 1)) <= 1).all())


@given(st.integers(0, 2**31 - 1))
def test_never_more_spikes_than_ttfs_on_the_measured_data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(500, generator=g) * 0.3 + 0.6  # most values far from 0
    m = mttfs.most_frequent_level(ttfs.levels(x, T, 0.1))
    assert mttfs.encode(x, T, 0.1, silent_level=m).sum() <= ttfs.encode(x, T, 0.1).sum()


def test_dead_zone_silences_exactly_the_configured_range():
    q = torch.arange(0, T + 1)
    for k in range(4):
        z = mttfs.apply_dead_zone(q, 7, k)
        inside = (q - 7).abs() <= k
        assert torch.equal(z[inside], torch.full((int(inside.sum()),), 7)) and torch.equal(z[~inside], q[~inside])
        x = q.float() * 0.1
        assert int(mttfs.encode(x, T, 0.1, silent_level=7, dead_zone=k).sum()) == int((~inside).sum())


def test_most_frequent_level_per_channel_and_ties():
    q = torch.tensor([[3, 3, 1, 0], [2, 5, 5, 5]])
    assert mttfs.most_frequent_level(q, channel_dim=0).tolist() == [3, 5]
    assert int(mttfs.most_frequent_level(torch.tensor([-2, 2, 4, 4, -2, 2]))) == 2  # tie -> nearest 0, positive
    with pytest.raises(TypeError):
        mttfs.most_frequent_level(torch.zeros(3))
    with pytest.raises(ValueError):
        mttfs.apply_dead_zone(q, 1, -1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(timesteps=2.5, scale=0.1), "integer"), (dict(timesteps=True, scale=0.1), "integer"),
    (dict(timesteps=4, scale=0.0), "> 0"), (dict(timesteps=4, scale=-0.1), "> 0"),
])
def test_ttfs_encode_refuses_meaningless_windows_and_scales(kwargs, match):
    from isospike.coding import ttfs

    with pytest.raises(ValueError, match=match):
        ttfs.encode(torch.rand(3, 4), **kwargs)
    with pytest.raises(ValueError, match="NaN"):
        ttfs.encode(torch.tensor([float("nan")]), timesteps=4, scale=0.1)


def test_lowest_level_silence_is_the_seed_ttfs_baseline():
    """Matterhorn's TTFS baseline: offset (unsigned) levels, the lowest level silent."""
    assert mttfs.lowest_level(T, signed=True) == -T and mttfs.lowest_level(T, signed=False) == 0
    low = mttfs.lowest_level(T, signed=True)
    floor = torch.full((50,), -10.0)  # every value clipped to the lowest level, -T
    assert mttfs.encode(floor, T, 0.1, silent_level=low, signed=True).sum() == 0
    assert mttfs.encode(floor, T, 0.1, signed=True).sum() == 50  # signed TTFS: all fire
    zeros = torch.zeros(50)
    assert mttfs.encode(zeros, T, 0.1, signed=True).sum() == 0  # signed TTFS: 0 is silent
    assert mttfs.encode(zeros, T, 0.1, silent_level=low, signed=True).sum() == 50
    x = torch.randn(300, generator=torch.Generator().manual_seed(1))
    spikes = mttfs.encode(x, T, 0.1, silent_level=low, signed=True)
    assert torch.equal(mttfs.decode(spikes, 0.1, silent_level=low, signed=True),
                       mttfs.decode(mttfs.encode(x, T, 0.1, signed=True), 0.1, signed=True))
    q = ttfs.levels(x.abs(), T, 0.1)
    assert int(spikes.sum()) == int(((torch.where(x < 0, -q, q)) != low).sum())  # one spike per non-lowest neuron


def test_check_silence_names_the_accepted_values():
    assert mttfs.check_silence("lowest") == "lowest"
    with pytest.raises(ValueError, match="'zero', 'lowest', 'mode'.*got 'low'"):
        mttfs.check_silence("low")
    with pytest.raises(ValueError, match="'zero', 'lowest'"):
        mttfs.check_silence("mode", ("zero", "lowest"))
