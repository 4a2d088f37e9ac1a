"""A new coding in one file: its population, options, converter and registration -- and it converts,
simulates, verifies, saves, loads and exports to NIR through the library's generic walkers.

The toy coding is "burst" coding: each ReLU becomes a population that, at every step, sends
round(ReLU(z) / theta) unit spikes (a burst), each worth theta. It provably equals
theta * round(ReLU(z) / theta) at every step (a grid quantizer), so its guarantee is qnn-equivalent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import isospike as isp
from isospike.activity import LayerActivity
from isospike.conversion import Coding, CodingOptions, SpikingNetwork, register
from isospike.conversion.coding import _CODINGS
from isospike.conversion.pipeline import activation_spans, assemble, prepare, require_calibration
from isospike.conversion.timefold import CountingSynapse
from isospike.neurons.populations import SpikingPopulation
from isospike.serialize.modules import ModuleCodec


class BurstPopulation(SpikingPopulation):
    label = "burst neurons"

    def __init__(self, theta: float, static_input: bool) -> None:
        super().__init__()
        self.theta, self.static_input = float(theta), static_input

    def forward(self, z: Tensor, timesteps: int) -> Tensor:
        T = timesteps
        seq = z.unsqueeze(0).expand(T, *z.shape) if self.static_input else z.reshape(T, -1, *z.shape[1:])
        n = torch.round(torch.relu(seq) / self.theta)
        return (n * self.theta).reshape(-1, *seq.shape[2:])

    def activity(self, args, output: Tensor) -> LayerActivity:
        T = args[1]
        n = torch.round(output.reshape(T, -1) / self.theta).sum(1).to(torch.int64)  # a burst of n unit spikes
        rows = output.shape[0] // T
        neurons = math.prod(output.shape[1:])
        return LayerActivity("", "neuron", neurons=neurons, neuron_updates=rows * neurons * T, spikes=int(n.sum()),
                             timesteps=T, samples=rows, by_step=n.tolist())

    def equivalent(self, timesteps: int) -> nn.Module:
        return Grid(self.theta)

    def receiver_wiring(self) -> dict[str, Any]:
        return {"event_size": self.theta}  # each unit spike is one event per connection


class Grid(nn.Module):
    def __init__(self, theta: float) -> None:
        super().__init__()
        self.theta = theta

    def forward(self, z: Tensor) -> Tensor:
        return torch.round(torch.relu(z) / self.theta) * self.theta


@dataclass(frozen=True)
class BurstOptions(CodingOptions):
    timesteps: int = 2
    levels: int = 8


def build(model: nn.Module, o: BurstOptions, calibration: Any) -> SpikingNetwork:
    prepared = prepare(model, calibration)
    require_calibration(calibration, "burst coding measures each ReLU's span")
    spans, _ = activation_spans(prepared, prepared.activations, calibration, 99.9)
    gm = assemble(prepared, {p: (lambda static, th=spans[p] / o.levels: BurstPopulation(th, static)) for p in spans})
    return SpikingNetwork(gm, o.timesteps, "burst", {"levels": o.levels})


def _read(f, _stored) -> nn.Module:
    f.object({"type", "theta", "static_input"})
    return BurstPopulation(f["theta"].number(0.0, lo_open=True), f["static_input"].boolean())


BURST = Coding("burst", BurstOptions, build, guarantee="qnn-equivalent", summary="bursts of unit spikes",
               populations={"BurstPopulation": ModuleCodec(
                   lambda m, _: {"type": "BurstPopulation", "theta": m.theta, "static_input": m.static_input}, _read)})


@pytest.fixture
def burst():
    register(BURST)
    yield BURST
    _CODINGS.pop("burst", None)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def test_a_coding_in_one_file_converts_simulates_verifies_saves_and_loads(burst, tmp_path):
    assert "burst" in isp.codings()
    model, x = _mlp(), torch.randn(32, 6)
    snn = isp.convert(model, coding="burst", calibration=x, levels=16)
    assert snn.timesteps == 2 and snn.coding == "burst"
    # it computes what it states: its equivalent network, exactly
    y = snn(x)
    assert torch.equal(y, isp.equivalent(snn)(x))
    assert (y - model(x)).abs().max() < 0.5  # and it is close to the ANN
    res = isp.simulate(snn, x)
    assert res.spikes > 0 and set(res.layers) >= {"1", "3"}
    # its synapses were wired at construction: a unit spike is one event per connection
    syn = snn.graph_module.get_submodule("2")
    assert isinstance(syn, CountingSynapse) and syn.event_size == snn.graph_module.get_submodule("1").theta
    cert = isp.verify(snn, x)
    assert cert.holds and {c.guarantee for c in cert.layers} == {"qnn-equivalent"}
    assert [c.layer for c in cert.layers] == ["1", "3"]
    path = isp.save(snn, tmp_path / "burst.safetensors")
    back = isp.load(path)
    assert back.coding == "burst" and torch.equal(back(x), y)
    assert isp.simulate(back, x).spikes == res.spikes


def test_options_are_typed_and_checked_at_the_entry(burst):
    model, x = _mlp(), torch.randn(8, 6)
    with pytest.raises(TypeError, match="unexpected option.*colour.*accepted: timesteps, levels"):
        isp.convert(model, coding="burst", calibration=x, colour="red")
    with pytest.raises(ValueError, match="levels must be a whole number"):
        isp.convert(model, coding="burst", calibration=x, levels=2.5)
    assert isp.conversion.get_coding("burst").default_timesteps == 2


def test_an_unsupported_layer_names_the_coding_once_at_the_entry(burst):
    model = nn.Sequential(nn.Linear(6, 4), nn.Sigmoid())
    with pytest.raises(isp.UnsupportedLayerError, match="Sigmoid at '1' is not supported by the 'burst' coding") as e:
        isp.convert(model, coding="burst", calibration=torch.randn(4, 6))
    assert e.value.coding == "burst" and e.value.path == "1"


def test_a_population_name_cannot_be_claimed_twice(burst):
    with pytest.raises(ValueError, match="BurstPopulation"):
        register(Coding("burst2", BurstOptions, build, populations=dict(BURST.populations)))
    with pytest.raises(ValueError, match="already registered"):
        register(Coding("burst", BurstOptions, build))


def test_every_coding_describes_itself():
    names = isp.codings()
    assert {"rate", "ttfs", "mttfs", "sigma_delta", "exact"} <= set(names)
    for name in names:
        d = isp.conversion.get_coding(name).describe()
        assert d["name"] == name and d["summary"] and d["guarantee"]
        assert d["default_timesteps"] == d["options"]["timesteps"] >= 1
    assert isp.conversion.get_coding("rate").default_timesteps == 8
    assert isp.conversion.get_coding("ttfs").default_timesteps == 15
    assert isp.conversion.get_coding("exact").default_timesteps == 1


def test_its_populations_travel_through_nir(burst, tmp_path):
    model, x = _mlp(), torch.randn(16, 6)
    snn = isp.convert(model, coding="burst", calibration=x)
    with pytest.warns(UserWarning, match="NIR has no burst neuron"):
        isp.nir.export(snn, tmp_path / "burst.nir")
    back = isp.nir.load(tmp_path / "burst.nir")
    assert back.coding == "burst" and torch.allclose(back(x), snn(x), atol=1e-5)
