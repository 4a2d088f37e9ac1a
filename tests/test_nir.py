import warnings

import numpy as np
import pytest
import torch

import isospike as isp

nir = pytest.importorskip("nir")


@pytest.mark.parametrize("coding,kwargs", [("rate", dict(timesteps=6)), ("ttfs", {}), ("mttfs", dict(dead_zone=1)),
                                           ("sigma_delta", dict(levels=8))])
def test_export_load_round_trip(tmp_path, trained_digits_cnn, digits, coding, kwargs):
    x = digits.test.x[:100]
    snn = isp.convert(trained_digits_cnn, coding=coding, calibration=digits.train.x[:256], **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        isp.nir.export(snn, tmp_path / "m.nir")
    assert (len(caught) > 0) == (coding != "rate")  # only rate has a native NIR neuron
    again = isp.nir.load(tmp_path / "m.nir")
    a, b = isp.simulate(snn, x), isp.simulate(again, x)
    assert torch.allclose(a.output, b.output, atol=1e-5)
    assert a.spikes == b.spikes and a.synaptic_ops == b.synaptic_ops


def test_rate_graph_is_standard_nir(trained_digits_cnn, digits):
    snn = isp.convert(trained_digits_cnn, coding="rate", timesteps=4, calibration=digits.train.x[:256])
    g = isp.nir.export(snn)
    kinds = [type(n).__name__ for n in g.nodes.values()]
    assert kinds[0] == "Input" and kinds[-1] == "Output" and kinds.count("IF") == 3 and "Conv2d" in kinds
    first_if = next(n for n in g.nodes.values() if isinstance(n, nir.IF))
    theta = next(iter(snn.info["thresholds"].values()))
    assert np.allclose(first_if.v_threshold, theta)
    # spikes carry 1 in NIR: the weights after a population are scaled by its theta
    names = list(g.nodes)
    second = g.nodes[names[3]]
    syn = snn.graph_module.get_submodule(names[3].replace("_", "."))
    assert np.allclose(second.weight, syn.layer.weight.detach().numpy() * theta, rtol=1e-6)


def test_another_nir_reader_parses_the_file(tmp_path, trained_digits_cnn, digits):
    pytest.importorskip("nirtorch")
    snntorch_nir = pytest.importorskip("snntorch.import_nir")
    snn = isp.convert(trained_digits_cnn, coding="rate", timesteps=4, calibration=digits.train.x[:256])
    g = isp.nir.export(snn, tmp_path / "m.nir")
    net = snntorch_nir.import_from_nir(nir.read(str(tmp_path / "m.nir")))
    layers = {n: m for n, m in net.named_children()}
    for key, node in g.nodes.items():
        if isinstance(node, (nir.Conv2d, nir.Affine)):
            assert np.allclose(layers[key].weight.detach().numpy(), node.weight)
        if isinstance(node, nir.IF):
            assert float(layers[key].threshold) == pytest.approx(float(np.unique(node.v_threshold)[0]))


def test_errors(tmp_path):
    with pytest.raises(TypeError, match="isospike.convert"):
        isp.nir.export(torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError):
        isp.nir.load(tmp_path / "none.nir")


@pytest.mark.parametrize("layer,in_shape,refused", [
    (torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), (1, 4, 4), "pads with 'reflect'"),
    (torch.nn.AvgPool2d(2, divisor_override=1), (1, 6, 6), "divisor_override"),
    (torch.nn.AvgPool2d(2, padding=1, ceil_mode=True, count_include_pad=False), (1, 6, 6), "ceil_mode"),
    (torch.nn.Conv2d(1, 2, 3, padding="same"), (1, 4, 4), None),  # resolved to explicit padding
])
def test_layer_options_nir_cannot_express_are_refused_not_dropped(tmp_path, layer, in_shape, refused):
    torch.manual_seed(0)
    x = torch.rand(8, *in_shape)
    body = torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU(), layer, torch.nn.ReLU(), torch.nn.Flatten())
    width = body(x).shape[1]
    snn = isp.convert(torch.nn.Sequential(*body, torch.nn.Linear(width, 2)).eval(), coding="rate", calibration=x)
    if refused is not None:
        with pytest.raises(TypeError, match=refused):
            isp.nir.export(snn, tmp_path / "m.nir")
        return
    graph = isp.nir.export(snn, tmp_path / "m.nir")
    conv = next(n for n in graph.nodes.values() if isinstance(n, nir.Conv2d))
    assert list(conv.padding) == [1, 1]  # 'same' written as the explicit padding it means
    # padding='same' and explicit padding run different convolution kernels: equal math, not
    # equal bits (about 1e-7 apart), so the round trip is compared to float tolerance
    assert torch.allclose(isp.nir.load(tmp_path / "m.nir")(x), snn(x), atol=1e-5)


def test_layers_over_tokens_get_a_named_error():
    x = torch.randn(6, 4, 5)
    snn = isp.convert(torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)).eval(),
                      coding="rate", calibration=x)
    with pytest.raises(TypeError, match="tokens"):
        isp.nir.export(snn)


def test_a_loaded_network_exports_to_nir(tmp_path, trained_digits_cnn, digits):
    """Saved files keep the shapes recorded at calibration, so NIR export works after isp.load."""
    snn = isp.convert(trained_digits_cnn, coding="rate", timesteps=4, calibration=digits.train.x[:256])
    again = isp.load(isp.save(snn, tmp_path / "snn.safetensors"))
    graph = isp.nir.export(again, tmp_path / "m.nir")
    assert [type(n).__name__ for n in graph.nodes.values()] == \
        [type(n).__name__ for n in isp.nir.export(snn).nodes.values()]
    x = digits.test.x[:32]
    assert torch.allclose(isp.nir.load(tmp_path / "m.nir")(x), snn(x), atol=1e-5)
