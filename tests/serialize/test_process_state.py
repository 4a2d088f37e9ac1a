"""Loading and running leave the process as it was: thread counts (torch and numba), environment
variables, the global torch RNG, stderr (fx's traceback), and no temporary file of a killed save
lingers once the folder is saved into or loaded from again."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import isospike as isp


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.view(x.shape[0], -1))))


def test_simulations_and_loads_keep_the_users_thread_counts(tmp_path):
    """In a fresh process (numba's thread pool starts at the first kernel call): the first
    simulation used to raise torch's thread count from the user's 1 to the core count."""
    code = f"""
import numba, torch, isospike as isp
from torch import nn
torch.set_num_threads(1)
numba_before = numba.get_num_threads()
net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
snn = isp.convert(net, coding="rate", timesteps=2, calibration=torch.randn(8, 1, 4, 4))
snn(torch.randn(2, 1, 4, 4))
after_run = torch.get_num_threads()
isp.load(isp.save(snn, {str(tmp_path / "snn.safetensors")!r}))
after_load = torch.get_num_threads()
isp.exact.convert(nn.Linear(3, 2))(torch.randn(2, 3))
print(after_run, after_load, torch.get_num_threads(), numba.get_num_threads() == numba_before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "1", "True"]


def _nir_file(tmp_path):
    nir = pytest.importorskip("nir")
    import numpy as np

    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                                "fc": nir.Affine(np.ones((2, 3), np.float32), np.zeros(2, np.float32)),
                                "lif": nir.LIF(tau=np.full(2, 1e-2), r=np.ones(2), v_leak=np.zeros(2),
                                               v_threshold=np.ones(2)),
                                "output": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    path = tmp_path / "m.nir"
    nir.write(str(path), graph)
    return path


def test_loads_leave_the_global_rng_untouched(tmp_path):
    """NIR layers are built on meta and filled; Hugging Face sources are built under a forked
    RNG: torch.get_rng_state() is the same after every loader."""
    torch.manual_seed(0)
    files = [isp.save(isp.convert(Net().eval(), coding=c, calibration=torch.randn(8, 1, 4, 4)), tmp_path / f"{c}.st")
             for c in ("rate", "ttfs")]
    files.append(isp.save(isp.exact.reference(nn.Sequential(nn.Linear(3, 2), nn.ReLU())), tmp_path / "exact.st"))
    transformers = pytest.importorskip("transformers")
    bert = transformers.BertModel(transformers.BertConfig(vocab_size=16, hidden_size=4, num_hidden_layers=1,
                                                          num_attention_heads=1, intermediate_size=8,
                                                          max_position_embeddings=8)).eval()
    files.append(isp.save(isp.exact.reference(bert), tmp_path / "bert.st"))
    nir_path = _nir_file(tmp_path)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    for path in files:
        isp.load(path)
        assert torch.equal(torch.get_rng_state(), state), path.name
    isp.nir.load(nir_path, convention="standard")  # a foreign LIF: NIR's own dynamics
    assert torch.equal(torch.get_rng_state(), state), "isp.nir.load"


def test_exact_hugging_face_loads_restore_the_environment(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=16)).eval()
    path = isp.save(isp.exact.reference(llama), tmp_path / "llama.safetensors")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    isp.load(path)
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TRANSFORMERS_OFFLINE"] == "0"


def test_a_graph_that_fails_at_load_prints_nothing_to_stderr(tmp_path, capfd):
    """torch.fx used to print a 25-line traceback before the clean error."""
    torch.manual_seed(0)
    path = isp.save(isp.convert(Net().eval(), coding="rate", calibration=torch.randn(8, 1, 4, 4)),
                    tmp_path / "good.safetensors")
    with safe_open(str(path), framework="pt") as f:
        structure = json.loads(f.metadata()["isospike"])
    graph = structure["graph"]
    out = graph.pop()
    graph.append({"op": "call_function", "name": "bad", "target": "torch:relu",
                  "args": {"seq": [{"node": "fc2"}, 3], "tuple": True}, "kwargs": {"dict": {}}})
    out["args"] = {"seq": [{"node": "bad"}], "tuple": True}
    graph.append(out)
    crafted = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(crafted), metadata={"isospike": json.dumps(structure)})
    capfd.readouterr()
    with pytest.raises(ValueError, match="does not run"):
        isp.load(crafted)
    assert capfd.readouterr().err == ""


def test_a_killed_saves_temporary_is_removed_by_the_next_save_or_load_in_its_folder(tmp_path):
    """SIGKILL leaves the temporary of atomic_write; its process is gone, so a save of any file
    into that folder, or a load from it, removes it (a running process's is kept)."""
    torch.manual_seed(0)
    snn = isp.convert(Net().eval(), coding="rate", calibration=torch.randn(8, 1, 4, 4))
    path = isp.save(snn, tmp_path / "snn.safetensors")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".snn.safetensors.isospike-tmp.{pid}.0123abcd.safetensors"
    running = tmp_path / f".other.safetensors.isospike-tmp.{os.getpid()}.feedbeef.safetensors"
    for f in (stale, running):
        f.write_bytes(b"half")
    isp.load(path)
    assert not stale.exists() and running.exists()
    stale.write_bytes(b"half")
    isp.save(snn, tmp_path / "another.safetensors")  # another file, same folder
    assert not stale.exists() and running.exists()
