"""Atomic result files: complete or absent, never half written; JSON accepts numpy/torch values."""

import json

import numpy as np
import pytest
import torch

from isospike._io import atomic_write, atomic_write_json


def test_json_takes_numpy_and_torch_values(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"f": np.float32(1.5), "i": np.int64(3), "a": np.arange(3),
                                                   "t": torch.tensor([0.25, 2.0]), "p": tmp_path})
    data = json.loads(path.read_text())
    assert data == {"f": 1.5, "i": 3, "a": [0, 1, 2], "t": [0.25, 2.0], "p": str(tmp_path)}
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        atomic_write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")

    def failing(p):
        p.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["report.md"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], ids=oct)
def test_written_files_get_the_permissions_of_any_new_file(tmp_path, umask):
    """Not mkstemp's private 0o600: 0o666 & ~umask, for text, JSON and callback writers alike."""
    import os
    import stat

    from safetensors.torch import save_file

    from isospike._io import atomic_write_text

    old = os.umask(umask)
    try:
        written = [atomic_write_text(tmp_path / "report.md", "# r\n"), atomic_write_json(tmp_path / "r.json", {"a": 1}),
                   atomic_write(tmp_path / "w.safetensors", lambda p: save_file({"w": torch.zeros(2)}, str(p)))]
        reference = tmp_path / "plain.txt"
        reference.write_text("x")  # what open() gives a new file under this umask
    finally:
        os.umask(old)
    expected = stat.S_IMODE(reference.stat().st_mode)
    assert expected == 0o666 & ~umask
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {p.name: expected for p in written}
    assert sorted(f.name for f in tmp_path.iterdir()) == ["plain.txt", "r.json", "report.md", "w.safetensors"]


def test_a_write_killed_mid_way_leaves_a_temporary_the_next_write_removes(tmp_path):
    """SIGKILL cannot be caught: the killed process leaves its temporary file; the next write to
    the same path removes it (its process is gone), and keeps a running process's file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "snn.safetensors"
    code = ("import sys, time\nfrom isospike._io import atomic_write\n"
            "def slow(p):\n    p.write_bytes(b'x' * 1000)\n    print('writing', flush=True)\n    time.sleep(60)\n"
            "atomic_write(sys.argv[1], slow)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    left = [p for p in tmp_path.iterdir() if p.name != target.name]
    assert len(left) == 1 and not target.exists()
    running = tmp_path / f".{target.name}.isospike-tmp.{os.getpid()}.feedbeef.safetensors"
    running.write_bytes(b"in progress")
    deadline = time.time() + 30
    while left[0].exists() and time.time() < deadline:
        atomic_write(target, lambda p: p.write_bytes(b"new"))
    assert not left[0].exists() and running.exists() and target.read_bytes() == b"new"
