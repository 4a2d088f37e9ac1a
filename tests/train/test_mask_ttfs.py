"""mask_ttfs on TTFSQuant networks (formerly tested through the hand-written TTFS BERT classifier):
choosing the silent level changes no value, a dead zone does."""

import pytest
import torch
from torch import nn

from isospike.train.ttfs import TTFSQuant, mask_ttfs


def qnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), TTFSQuant(15, 0.1, signed=True), nn.Linear(32, 32), nn.ReLU(),
                         TTFSQuant(15, 0.1), nn.Linear(32, 4)).eval()


@pytest.mark.parametrize("spiking", [False, True])
def test_silent_levels_keep_values_and_a_dead_zone_changes_them(spiking):
    model, x = qnn(), torch.randn(64, 8) + 0.5
    for m in model.modules():
        if isinstance(m, TTFSQuant):
            m.spiking = spiking
    with torch.no_grad():
        y0 = model(x)
        silent = mask_ttfs(model, lambda: model(x))
        assert len(silent) == 2 and torch.allclose(model(x), y0, atol=1e-5)
        lowest = mask_ttfs(model, silence="lowest")
        assert lowest == {"1": -15, "4": 0} and torch.allclose(model(x), y0, atol=1e-5)
        mask_ttfs(model, silence="zero")
        assert torch.allclose(model(x), y0, atol=1e-6)
        mask_ttfs(model, lambda: model(x), dead_zone=2, dead_zone_layers=lambda p: p == "1")
        assert model[1].dead_zone == 2 and model[4].dead_zone == 0 and not torch.allclose(model(x), y0, atol=1e-5)
    with pytest.raises(ValueError, match="'zero', 'lowest', 'mode'"):
        mask_ttfs(model, silence="smallest")
    with pytest.raises(ValueError, match="pass run"):
        mask_ttfs(model)
