import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import isospike as isp
from isospike.devices import DeviceVariation, MemristiveCrossbar, OptoelectronicSynapse
from isospike.models import build


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = torch.relu(self.fc2(h) + h)  # a function call and a skip connection in the graph
        return self.out(h.flatten(1))


CASES = [
    ("rate", dict(timesteps=4)),
    ("ttfs", dict(timesteps=15, synapse=OptoelectronicSynapse.in2o3(DeviceVariation(0.0)))),
    ("mttfs", dict(timesteps=15, per_channel=True, dead_zone=1)),
    ("sigma_delta", dict(levels=8, max_spikes_per_step=2, timesteps=6)),
]


@pytest.mark.parametrize("coding,kwargs", CASES, ids=[c for c, _ in CASES])
def test_round_trip_is_identical(tmp_path, trained_digits_cnn, digits, coding, kwargs):
    x = digits.test.x[:64]
    snn = isp.convert(trained_digits_cnn, coding=coding, calibration=digits.train.x[:256], **kwargs)
    path = isp.save(snn, tmp_path / "snn.safetensors")
    again = isp.load(path)
    a, b = isp.simulate(snn, x), isp.simulate(again, x)
    assert torch.equal(a.output, b.output)
    assert a.spikes == b.spikes and a.synaptic_ops == b.synaptic_ops
    assert again.coding == coding and again.timesteps == snn.timesteps and again.info == json.loads(json.dumps(snn.info))


@pytest.mark.parametrize("threads", [1, 2])
def test_loaded_tensors_own_aligned_memory_so_one_thread_gives_the_same_bits(tmp_path, trained_digits_cnn, digits,
                                                                              threads):
    # tensors left as views of the file sit at its byte offsets; single-threaded BLAS then picks
    # another kernel and the masked-TTFS silent-level fold came out 4.8e-7 apart (seen before the fix)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = digits.test.x[:64]
        snn = isp.convert(trained_digits_cnn, coding="mttfs", calibration=digits.train.x[:256], timesteps=15,
                          per_channel=True, dead_zone=1)
        again = isp.load(isp.save(snn, tmp_path / "snn.safetensors"))
        for name, t in list(again.named_parameters()) + list(again.named_buffers()):
            if t.numel() > 16:
                assert t.data_ptr() % 64 == 0, name
        assert torch.equal(isp.simulate(snn, x).output, isp.simulate(again, x).output)
    finally:
        torch.set_num_threads(before)


def test_round_trip_of_functional_graphs_resnets_and_crossbars(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(16, 6)
    snn = isp.convert(Residual().eval(), coding="rate", timesteps=3, calibration=x)
    isp.save(snn, tmp_path / "r.safetensors")
    assert torch.equal(isp.load(tmp_path / "r.safetensors")(x), snn(x))
    res = build("resnet20", in_channels=3, num_classes=10).eval()
    xr = torch.rand(4, 3, 32, 32)
    snn = MemristiveCrossbar(levels=16, adc_bits=8).place(isp.convert(res, coding="mttfs", timesteps=7, calibration=xr),
                                                          calibration=xr)
    isp.save(snn, tmp_path / "x.safetensors")
    again = isp.load(tmp_path / "x.safetensors")
    assert torch.equal(again(xr), snn(xr)) and again.crossbar == snn.crossbar


def test_unsafe_or_foreign_files_are_refused(tmp_path):
    x = torch.randn(8, 6)
    snn = isp.convert(Residual().eval(), coding="rate", timesteps=2, calibration=x)
    path = isp.save(snn, tmp_path / "r.safetensors")
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    structure = json.loads(meta["isospike"])
    for node in structure["graph"]:
        if node["op"] == "call_function":
            node["target"] = "os:system"
    save_file(tensors, str(tmp_path / "evil.safetensors"), metadata={"isospike": json.dumps(structure)})
    with pytest.raises(ValueError, match="refusing"):
        isp.load(tmp_path / "evil.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not an isospike network"):
        isp.load(tmp_path / "plain.safetensors")
    with pytest.raises(FileNotFoundError):
        isp.load(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="isospike.convert"):
        isp.save(nn.Linear(2, 2), tmp_path / "n.safetensors")


class ShapeMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.view(x.shape[0], -1))))  # builtins.getattr in the graph


def test_graphs_reading_shapes_and_float64_networks_round_trip(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(10, 1, 4, 4)
    snn = isp.convert(ShapeMLP().eval(), coding="rate", timesteps=3, calibration=x)
    assert torch.equal(isp.load(isp.save(snn, tmp_path / "s.safetensors"))(x), snn(x))
    ann64 = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double().eval()
    x64 = torch.randn(10, 5, dtype=torch.float64)
    snn64 = isp.convert(ann64, coding="rate", timesteps=4, calibration=x64)
    again = isp.load(isp.save(snn64, tmp_path / "d.safetensors"))
    out = again(x64)
    assert out.dtype == torch.float64 and torch.equal(out, snn64(x64))


@pytest.mark.parametrize("target,op,args", [
    ("builtins:eval", "call_function", None),
    ("builtins:getattr", "call_function", "__class__"),
    ("operator:call", "call_function", None),
    ("torch:load", "call_function", None),
    ("__reduce_ex__", "call_method", None),
])
def test_files_reaching_for_code_execution_are_refused(tmp_path, target, op, args):
    x = torch.randn(8, 16)
    snn = isp.convert(ShapeMLP().eval(), coding="rate", timesteps=2, calibration=x.view(8, 1, 4, 4))
    path = isp.save(snn, tmp_path / "s.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    structure = json.loads(meta["isospike"])
    node = next(n for n in structure["graph"] if n["target"] == "builtins:getattr")
    node["op"], node["target"] = op, target
    if args is not None:
        node["args"]["seq"][1] = args
    save_file(load_file(str(path)), str(tmp_path / "evil.safetensors"), metadata={"isospike": json.dumps(structure)})
    with pytest.raises(ValueError, match="refusing|refused"):
        isp.load(tmp_path / "evil.safetensors")


@pytest.mark.parametrize("content", [b"\x00\x01garbage", b"PK\x03\x04 a zip, e.g. a torch.save file", b""],
                         ids=["garbage", "torch-zip", "empty"])
def test_unreadable_files_are_a_one_line_value_error_naming_the_file(tmp_path, content):
    """safetensors' own SafetensorError becomes a ValueError naming the file and what load reads."""
    path = tmp_path / "snn.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="is not a readable safetensors file") as e:
        isp.load(path)
    message = str(e.value)
    assert str(path) in message and "isospike.save" in message and "\n" not in message


def test_paths_that_cannot_be_read_say_why(tmp_path):
    import os

    with pytest.raises(FileNotFoundError, match="no saved network"):
        isp.load(tmp_path / "missing.safetensors")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        isp.load(tmp_path)
    if os.geteuid() != 0:  # root reads any file
        x = torch.randn(8, 6)
        path = isp.save(isp.convert(Residual().eval(), coding="rate", timesteps=2, calibration=x), tmp_path / "r.st")
        path.chmod(0)
        with pytest.raises(PermissionError, match="cannot be read"):
            isp.load(path)


def _rewrite_populations(path, out, change):
    """Copy a saved network with each TTFS population's JSON spec passed through ``change``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    structure = json.loads(meta["isospike"])
    for spec in structure["modules"].values():
        if spec["type"] == "TTFSPopulation":
            change(spec)
    save_file(load_file(str(path)), str(out), metadata={"isospike": json.dumps(structure)})
    return out


def test_ttfs_seed_baseline_round_trips_and_its_silence_is_checked(tmp_path):
    """silence='lowest' (Matterhorn's TTFS baseline) is saved, read from a closed set, and must
    match the stored silent levels; files of plain TTFS carry no silence entry."""
    from isospike.train.ttfs import TTFSQuant

    torch.manual_seed(0)
    qnn = nn.Sequential(nn.Linear(5, 16), TTFSQuant(15, 0.1, signed=True), nn.Linear(16, 8), TTFSQuant(15, 0.1),
                        nn.Linear(8, 3)).eval()
    x = torch.randn(64, 5)
    snn = isp.convert(qnn, coding="ttfs", calibration=x, silence="lowest")
    path = isp.save(snn, tmp_path / "seed.safetensors")
    again = isp.load(path)
    a, b = isp.simulate(snn, x), isp.simulate(again, x)
    assert torch.equal(a.output, b.output) and a.spikes == b.spikes and a.synaptic_ops == b.synaptic_ops
    assert again.info["silence"] == "lowest"
    assert [m.silence for _, m in again.neurons()] == [m.silence for _, m in snn.neurons()] == ["lowest", "lowest"]
    plain = isp.save(isp.convert(qnn, coding="ttfs", calibration=x), tmp_path / "plain.safetensors")
    from safetensors import safe_open

    with safe_open(str(plain), framework="pt") as f:
        assert '"silence"' not in f.metadata()["isospike"]
    bad = _rewrite_populations(path, tmp_path / "bad.safetensors", lambda s: s.update(silence="__import__('os')"))
    with pytest.raises(ValueError, match="refusing field.*silence"):
        isp.load(bad)
    # a file may not claim the baseline while storing another silent level
    wrong = _rewrite_populations(path, tmp_path / "wrong.safetensors",
                                 lambda s: s.update(silence="zero") if s["signed"] else None)
    with pytest.raises(ValueError, match="silent_level"):
        isp.load(wrong)
