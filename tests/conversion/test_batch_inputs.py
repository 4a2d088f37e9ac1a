"""isp.simulate, isp.verify and isp.energy.estimate over a DataLoader (or a list / any iterable of
batches) for every kind of network: graph networks (SpikingNetwork), networks coded at their
sites, and exact networks. Outputs are the batches' outputs concatenated, counts the batches'
counts summed, samples all of them; a DataLoader of (x, y) pairs gives its x."""

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import isospike as isp
from isospike.conversion.sites.network import CodedNetwork


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def tree_equal(a, b):
    la, lb = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
    return len(la) == len(lb) and all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
                                      for x, y in zip(la, lb))


def check_batches(net, x, batches, loader):
    """simulate / verify / energy over ``loader`` equal the same over ``batches`` one by one."""
    parts = [isp.simulate(net, b) for b in batches]
    sim = isp.simulate(net, loader)
    assert sim.samples == sum(p.samples for p in parts) == len(x)
    assert sim.spikes == sum(p.spikes for p in parts) > 0
    assert sim.synaptic_ops == sum(p.synaptic_ops for p in parts)
    out = torch.cat([p.output.logits if hasattr(p.output, "logits") else p.output for p in parts])
    got = sim.output.logits if hasattr(sim.output, "logits") else sim.output
    assert torch.equal(got, out)
    cert = isp.verify(net, loader)
    assert cert.holds and cert.samples == len(x)
    one = [isp.verify(net, b) for b in batches]
    assert [r.layer for r in cert.layers] == [r.layer for r in one[0].layers]
    assert [r.entries for r in cert.layers] == [sum(c.layers[i].entries for c in one) for i in range(len(cert.layers))]
    rep = isp.energy.estimate(net, loader, hardware="loihi")
    per = [isp.energy.estimate(net, b, hardware="loihi") for b in batches]
    sizes = [p.samples for p in parts]
    assert rep.samples == len(x)
    assert rep.total_j == pytest.approx(sum(r.total_j * n for r, n in zip(per, sizes)) / len(x))
    return sim


def test_a_graph_network_takes_a_data_loader_of_pairs_and_a_list_of_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x, y = torch.rand(10, 6), torch.randint(0, 3, (10,))
    snn = isp.convert(model, coding="rate", timesteps=4, calibration=x)
    assert isinstance(snn, isp.SpikingNetwork)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)  # batches of 4, 4, 2 as (x, y)
    batches = list(x.split(4))
    sim = check_batches(snn, x, batches, loader)
    assert sim.timesteps == 4
    assert torch.equal(isp.simulate(snn, batches).output, sim.output)  # a list of batches
    assert isp.simulate(snn, (x, y)).samples == 10  # an (inputs, targets) pair: its inputs
    with pytest.raises(TypeError, match="one input tensor per batch"):
        isp.simulate(snn, [{"x": x}])
    with pytest.raises(ValueError, match="no batches"):
        isp.simulate(snn, DataLoader(TensorDataset(x[:0]), batch_size=4))


def test_a_site_network_takes_a_data_loader_of_keyword_batches_and_of_pairs():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    bert = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2)).eval()
    ids = torch.randint(3, 32, (6, 5), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    snn = isp.convert(bert, coding="ttfs", calibration={"input_ids": ids, "attention_mask": mask})
    assert isinstance(snn, CodedNetwork)
    rows = [{"input_ids": i, "attention_mask": m} for i, m in zip(ids, mask)]
    loader = DataLoader(rows, batch_size=4)  # collated into dicts of batched tensors
    batches = [{"input_ids": ids[:4], "attention_mask": mask[:4]}, {"input_ids": ids[4:], "attention_mask": mask[4:]}]
    check_batches(snn, ids, batches, loader)

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 3)).eval()
    x = torch.rand(10, 6)
    snn = isp.convert(mlp, coding="sigma_delta", calibration=x, front="sites")
    check_batches(snn, x, list(x.split(4)), DataLoader(TensorDataset(x, torch.zeros(10)), batch_size=4))


def test_an_exact_network_takes_a_data_loader():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.randn(5, 3)
    net = isp.exact.convert(model, backend="torch")
    loader = DataLoader(TensorDataset(x, torch.zeros(5)), batch_size=2)
    sim = check_batches(net, x, list(x.split(2)), loader)
    assert torch.equal(sim.output, net(x)) and sim.timesteps == 1
    assert isp.verify(net, iter(list(x.split(2)))).holds  # a generator of batches
