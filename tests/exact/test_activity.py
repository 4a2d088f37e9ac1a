"""Exact gate networks report the common activity record (isospike.activity.LayerActivity):
isp.simulate runs them like any other network, and the energy model prices them from the same rows
it gave before the records were merged."""

import pytest
import torch
from torch import nn

import isospike as isp
import isospike.energy as E
from isospike.activity import LayerActivity


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 3)).eval()


def test_an_exact_network_reports_gate_rows_of_the_common_record():
    net = isp.exact.convert(small_net())
    x = torch.rand(5, 4)
    with isp.counting(net) as seen:
        net(x)
    rows, counts = seen.layers, net.layer_counts()
    assert list(rows) == [path or "<model>" for path in counts]
    for path, c in counts.items():
        row = rows[path or "<model>"]
        assert type(row) is LayerActivity and row.kind == "gates" and row.name == (path or "<model>")
        assert (row.gate_evaluations, row.neuron_updates, row.spikes, row.synaptic_ops, row.acs, row.macs, row.outputs) \
            == (c.gate_evaluations, c.gate_evaluations, c.spikes, c.synaptic_events, c.synaptic_events, 0, c.lanes)
        assert (row.samples, row.timesteps) == (5, 1)
        one = row.per_inference()
        assert one.samples == 1 and one.spikes == pytest.approx(c.spikes / 5)
    with isp.counting(net) as nothing:
        pass
    assert nothing.layers == {} and nothing.samples == 0
    with pytest.raises(ValueError, match="does not count its gates"), isp.counting(isp.exact.reference(small_net())):
        pass


def test_simulate_runs_an_exact_network_like_any_other():
    model = small_net()
    net = isp.exact.convert(model)
    x = torch.randn(6, 4)
    with isp.counting(net) as seen:
        y = net(x)
    expected = seen.layers
    res = isp.simulate(net, x)
    assert torch.equal(res.output.view(torch.int32), y.view(torch.int32))  # bit for bit
    assert torch.equal(res.output.view(torch.int32), isp.exact.reference(model)(x).view(torch.int32))
    assert (res.timesteps, res.samples) == (1, 6)
    assert res.layers == expected  # the network's own rows
    assert isinstance(res.spikes, int) and res.spikes == net.counts().spikes > 0
    assert res.synaptic_ops == net.counts().synaptic_events
    # in chunks: the same output and the same totals (each value is computed on its own)
    chunked = isp.simulate(net, x, batch_size=4)
    assert torch.equal(chunked.output.view(torch.int32), y.view(torch.int32))
    assert chunked.layers == expected and chunked.spikes == res.spikes
    # through the common entry, with keyword inputs
    snn = isp.convert(model, coding="exact")
    assert isp.simulate(snn, {"input": x}).layers == expected
    with pytest.raises(ValueError, match="one time step"):
        isp.simulate(net, x, timesteps=4)
    with pytest.raises(ValueError, match="does not count its gates"):
        isp.simulate(isp.exact.reference(model), x)


def test_energy_of_an_exact_network_is_what_the_gate_counts_gave_before():
    """The committed energy path priced each module's gate counts per inference (synaptic events
    as accumulates, gate evaluations, spikes, values computed); the record gives the same report."""
    net = isp.exact.convert(small_net())
    x = torch.rand(4, 4)
    net(x)
    n = len(x)
    before = E.NetworkActivity("exact", n, [
        LayerActivity(path, "gates", synaptic_ops=c.synaptic_events / n, gate_evaluations=c.gate_evaluations / n,
                      spikes=c.spikes / n, outputs=c.lanes / n, samples=1)
        for path, c in net.layer_counts().items()])
    for hw in ("horowitz45", "loihi", "cim-memristor"):
        for mode in ("full", "ops"):
            if (hw, mode) == ("cim-memristor", "ops"):  # no short formula on compute-in-memory hardware
                with pytest.raises(ValueError, match="use mode='full'"):
                    E.estimate(net, x, hardware=hw, mode=mode)
                continue
            now, then = E.estimate(net, x, hardware=hw, mode=mode), E.price(before, hw, mode)
            assert now.total_j == then.total_j and now.by_category == then.by_category
            assert now.total_j > 0
            assert [(r.name, r.acs, r.spikes, r.gate_evaluations, r.energy_j) for r in now.layers] == \
                [(r.name or "<model>", r.acs, r.spikes, r.gate_evaluations, r.energy_j) for r in then.layers]
            assert now.ann_total_j is None and any("spatial" in note for note in now.notes)
