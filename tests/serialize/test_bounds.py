"""Every load is bounded before it allocates (memory from declared sizes, the load-time test run
metered op by op, a wall-clock bound), non-regular files are refused without being opened, and
every failure is one clean error naming the file and the field."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import isospike as isp
from isospike.cli import main
from isospike.errors import FileFormatError
from isospike.serialize import bounds


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.view(x.shape[0], -1))))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    snn = isp.convert(Small().eval(), coding="rate", timesteps=2, calibration=torch.randn(8, 1, 4, 4))
    path = isp.save(snn, tmp_path_factory.mktemp("bounds") / "good.safetensors")
    with safe_open(str(path), framework="pt") as f:
        structure = json.loads(f.metadata()["isospike"])
    return path, structure, load_file(str(path))


def write(tmp_path, structure, tensors, name="crafted.safetensors"):
    path = tmp_path / name
    save_file(tensors, str(path), metadata={"isospike": json.dumps(structure)})
    return path


def clean(exc, path):
    """One line, naming the file."""
    assert "\n" not in str(exc) and str(path) in str(exc), str(exc)


@contextlib.contextmanager
def within(seconds):
    """Fail (instead of hanging the suite) when the block takes longer than ``seconds``."""
    def stop(*_):
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------ non-regular files
def test_fifos_are_refused_at_once_by_every_loader(tmp_path, capsys):
    fifo = tmp_path / "snn.safetensors"
    os.mkfifo(fifo)
    with within(20):
        for load in (isp.load, isp.nir.load):
            with pytest.raises(ValueError, match="FIFO") as e:
                load(fifo)
            clean(e.value, fifo)
        assert main(["verify", str(fifo), "--out", str(tmp_path / "v")]) == 1
        assert "FIFO" in capsys.readouterr().err
        train = tmp_path / "trained"
        train.mkdir()
        os.mkfifo(train / "model.json")
        assert main(["convert", "--model", str(train), "--out", str(tmp_path / "o")]) == 1
        assert "FIFO" in capsys.readouterr().err


# ------------------------------------------------------------------ the load-time test run
def _conv_bomb(saved, tmp_path, padding=20_000):
    """A 1x1 convolution of the (4x4) input padded by ``padding``: a few KB asking for
    (2 * padding + 4)^2 floats (6.4 GB for 20,000)."""
    _, structure, tensors = saved
    structure = json.loads(json.dumps(structure))
    tensors = dict(tensors, **{"attr.w": torch.ones(1, 1, 1, 1), "graph_module.w": torch.ones(1, 1, 1, 1)})
    structure["attrs"] = ["w"]
    graph = structure["graph"]
    at = next(i for i, n in enumerate(graph) if n["name"] == "view") + 1
    graph[at:at] = [
        {"op": "get_attr", "name": "w", "target": "w", "args": {"seq": [], "tuple": True}, "kwargs": {"dict": {}}},
        {"op": "call_function", "name": "bomb", "target": "torch.nn.functional:conv2d",
         "args": {"seq": [{"node": "x"}, {"node": "w"}, None, 1, padding], "tuple": True}, "kwargs": {"dict": {}}}]
    return write(tmp_path, structure, tensors, "bomb.safetensors")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak memory from /proc (Linux)")
def test_a_test_run_that_would_allocate_gigabytes_is_refused_before_it_allocates(tmp_path, saved):
    """Before: 6 GiB after 73 s. Now refused by the meter from meta shapes; measured in a child
    process, whose peak memory stays far below the 6.4 GB the graph asks for."""
    path = _conv_bomb(saved, tmp_path)
    # VmHWM, the peak of this process's own memory (ru_maxrss would carry over the peak of the forked
    # pytest worker, gigabytes late in a full run)
    code = ("import sys, time, isospike as isp\nstart = time.time()\n"
            "try:\n    isp.load(sys.argv[1])\nexcept ValueError as e:\n    print('refused:', e)\n"
            "print('seconds', time.time() - start)\n"
            "print('peak_kb', next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "would allocate more than 256." in out.stdout and "convolution asks for" in out.stdout
    assert float(out.stdout.split("seconds")[1].split()[0]) < 30
    peak_kb = int(out.stdout.rsplit("peak_kb", 1)[1])
    assert peak_kb < 1_000_000, f"loading allocated {peak_kb / 1e6:.1f} GB ({out.stdout})"


def test_the_memory_cap_grows_with_the_file_and_small_runs_pass(tmp_path, saved):
    assert bounds.memory_cap(0) == 256 * 2**20 and bounds.memory_cap(10**6) == 256 * 2**20 + 16 * 10**6
    isp.load(_conv_bomb(saved, tmp_path, padding=20))  # 44 x 44: well inside the cap, runs


def test_the_work_and_time_bounds_stop_the_test_run(tmp_path, saved, monkeypatch):
    path = saved[0]
    monkeypatch.setattr(bounds, "BASE_WORK", 100)
    monkeypatch.setattr(bounds, "WORK_PER_FILE_BYTE", 0)
    with pytest.raises(bounds.LoadBoundError, match="would compute more than") as e:
        isp.load(path)
    clean(e.value, path)
    monkeypatch.undo()
    monkeypatch.setattr(bounds, "MAX_SECONDS", 0.0)
    with pytest.raises(bounds.LoadBoundError, match="took more than 0 s") as e:
        isp.load(path)
    clean(e.value, path)
    monkeypatch.undo()
    isp.load(path)  # the network itself was fine


def test_recorded_population_shapes_must_be_what_the_populations_compute(tmp_path, saved):
    """The simulation memory guard estimates from these shapes: a file that records 1 value for
    a population of 8 (estimate 0.2 MiB, allocates 840 MiB) is refused at load."""
    path, structure, tensors = saved
    structure = json.loads(json.dumps(structure))
    pop = next(n for n in structure["graph"] if n["op"] == "call_module" and n["target"] == "relu")
    pop["meta"]["shape"] = [8, 1]
    crafted = write(tmp_path, structure, tensors)
    with pytest.raises(FileFormatError, match="population 'relu' holds 1 values.*computes 8") as e:
        isp.load(crafted)
    clean(e.value, crafted)
    loaded = isp.load(path)  # a faithful file: the guard's estimate is the real size
    assert loaded.population_sizes(torch.zeros(1, 1, 4, 4)) == {"relu": 8}


# ------------------------------------------------------------------ clean errors
def test_float8_and_other_unread_dtypes_are_refused_by_name(tmp_path, saved):
    _, structure, tensors = saved
    bad = dict(tensors)
    bad["graph_module.fc2.layer.weight"] = bad["graph_module.fc2.layer.weight"].to(torch.float8_e4m3fn)
    path = write(tmp_path, structure, bad)
    with pytest.raises(FileFormatError, match=r"'graph_module.fc2.layer.weight' is stored as F8_E4M3") as e:
        isp.load(path)
    clean(e.value, path)


def test_a_spiking_file_labelled_exact_is_refused_at_load(tmp_path, saved):
    _, structure, tensors = saved
    path = write(tmp_path, dict(structure, coding="exact"), tensors)
    with pytest.raises(FileFormatError, match="coding = 'exact': it must be one of") as e:
        isp.load(path)
    clean(e.value, path)


def test_exact_files_with_huge_label_tables_or_unknown_activations_are_refused_fast(tmp_path):
    """num_labels = 10**8 used to build a label table for 168 s and 2.9 GB."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(vocab_size=16, hidden_size=4, num_hidden_layers=1,
                                                           num_attention_heads=1, intermediate_size=8,
                                                           max_position_embeddings=8)).eval()
    path = isp.save(isp.exact.reference(model), tmp_path / "bert.safetensors")
    with safe_open(str(path), framework="pt") as f:
        structure = json.loads(f.metadata()["isospike"])
    tensors = load_file(str(path))
    for key, value, match in (("num_labels", 10**8, "num_labels"), ("hidden_act", "evil", "hidden_act"),
                              ("vocab_size", 2**60, "2\\*\\*53")):
        crafted = json.loads(json.dumps(structure))
        crafted["source"]["config"][key] = value
        with within(20), pytest.raises(FileFormatError, match=match) as e:
            isp.load(write(tmp_path, crafted, tensors))
        clean(e.value, tmp_path / "crafted.safetensors")


@pytest.mark.parametrize("edit,match", [
    ({"model": "resnet20", "kwargs": {"in_channels": 10**9}}, r"in_channels.*\[1, 1024\]"),
    ({"model": {"__class__": 1}}, "model"),
    ({"model": "small-cnn", "kwargs": "x"}, "kwargs"),
    ({"model": "small-cnn", "extra": 1}, "unknown entries"),
], ids=["huge-size", "not-a-name", "kwargs-not-object", "extra-key"])
def test_a_crafted_model_json_gives_one_clean_line(tmp_path, capsys, edit, match):
    folder = tmp_path / "trained"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps(edit))
    save_file({"w": torch.zeros(1)}, str(folder / "weights.safetensors"))
    assert main(["convert", "--model", str(folder), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.json" in err[0] and "Traceback" not in err[0]
    assert __import__("re").search(match, err[0])


def test_verify_refuses_an_empty_batch(saved):
    snn = isp.load(saved[0])
    with pytest.raises(ValueError, match="at least one sample"):
        isp.verify(snn, torch.zeros(0, 1, 4, 4))
    exact = isp.exact.reference(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="at least one sample"):
        isp.verify(exact, torch.zeros(0, 2))


# ------------------------------------------------------------------ NIR
nir = pytest.importorskip("nir")


def _nir_graph(weight, inputs=("input",)):
    nodes = {k: nir.Input(input_type={"input": np.array([3])}) for k in inputs}
    nodes.update(fc=nir.Affine(weight, np.zeros(2, np.float32)), output=nir.Output(output_type={"output": np.array([2])}))
    return nir.NIRGraph(nodes=nodes, edges=[(k, "fc") for k in inputs] + [("fc", "output")], type_check=False)


@pytest.mark.parametrize("value,match", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                         (1 + 5j, "complex"), (1e300, "float32's range")])
def test_nir_weights_are_checked_like_safetensors(tmp_path, value, match):
    weight = np.ones((2, 3), np.complex128 if isinstance(value, complex) else np.float64)
    weight[0, 1] = value
    path = tmp_path / "w.nir"
    nir.write(str(path), _nir_graph(weight))
    with pytest.raises(FileFormatError, match=f"weight of NIR node 'fc'.*{match}") as e:
        isp.nir.load(path)
    clean(e.value, path)


def test_nir_input_messages_count_the_inputs_and_name_the_file(tmp_path):
    path = tmp_path / "two.nir"
    nir.write(str(path), _nir_graph(np.ones((2, 3), np.float32), inputs=("a", "b")))
    with pytest.raises(FileFormatError, match=r"2 nir.Input nodes \(a, b\)") as e:
        isp.nir.load(path)
    clean(e.value, path)
    # one Input inside a subgraph whose own keys hold dots: not "more than one nir.Input"
    inner = nir.NIRGraph(nodes={"in.put": nir.Input(input_type={"input": np.array([3])}),
                                "f.c": nir.Affine(np.ones((2, 3), np.float32), np.zeros(2, np.float32)),
                                "out.put": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("in.put", "f.c"), ("f.c", "out.put")], type_check=False)
    outer = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}), "sub": inner,
                                "output": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("input", "sub"), ("sub", "output")], type_check=False)
    net = isp.nir.load(outer)
    assert net(torch.ones(1, 3)).shape == (1, 2)


def test_nir_files_may_inflate_only_to_the_cap_for_their_size(tmp_path):
    """A few KB declaring 512 MiB of zeros (gzip): accepted before (any file could declare 2 GiB)."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "inflate.nir"
    with h5py.File(path, "w") as f:
        f.create_dataset("w", shape=(2**27,), dtype="f4", chunks=(2**20,), compression="gzip", fillvalue=0.0)
    assert path.stat().st_size < 2**20
    with pytest.raises(FileFormatError, match="refusing to inflate") as e:
        isp.nir.load(path)
    clean(e.value, path)


def test_nir_graphs_that_break_numpy_or_torch_give_one_clean_error(tmp_path):
    """Arrays of the wrong shape or kind used to escape as AssertionError, IndexError,
    RuntimeError or OverflowError; each is one FileFormatError naming the file now."""
    def affine(weight, bias):  # built valid, then given the file's arrays (nir's constructor asserts)
        node = nir.Affine(np.ones((2, 3), np.float32), np.zeros(2, np.float32))
        node.weight, node.bias = weight, bias
        return node

    cases = {
        "weight-1d": affine(np.ones(3, np.float32), np.zeros(2, np.float32)),
        "bias-shape": affine(np.ones((2, 3), np.float32), np.zeros(5, np.float32)),
        "stride-huge": nir.Conv1d(input_shape=3, weight=np.ones((2, 1, 1), np.float32), stride=10**30, padding=0,
                                  dilation=1, groups=1, bias=np.zeros(2, np.float32)),
        "groups-zero": nir.Conv1d(input_shape=3, weight=np.ones((2, 1, 1), np.float32), stride=1, padding=0,
                                  dilation=1, groups=0, bias=np.zeros(2, np.float32)),
        "strings": affine(np.array([["a", "b", "c"], ["d", "e", "f"]]), np.zeros(2, np.float32)),
    }
    for name, node in cases.items():
        g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 3])}), "fc": node,
                                "output": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("input", "fc"), ("fc", "output")], type_check=False)
        with pytest.raises(FileFormatError) as e:
            isp.nir.load(g)
        assert "the NIR graph" in str(e.value) and "\n" not in str(e.value), name
