"""The README's tour runs as written, each block on its own (training budgets shortened), so what a
new user copies works."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    tour = text.split("## A 5-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", tour, flags=re.S)


def test_the_tour_has_its_code_blocks():
    blocks = tour_blocks()
    assert len(blocks) >= 4
    assert "isp.convert" in blocks[0] and any("ex.add" in b for b in blocks)
    assert any("get_coding" in b and "isp.save(exact" in b for b in blocks)


@pytest.mark.filterwarnings("ignore")
def test_the_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it writes energy.png, snn.safetensors, snn.nir
    for block in tour_blocks():
        code = re.sub(r"epochs=\d+", "epochs=1", block)  # same calls, a shorter training budget
        exec(compile(code, str(README), "exec"), {})  # a fresh namespace: every block stands alone
    for name in ("energy.png", "snn.safetensors", "snn.nir", "exact.safetensors"):
        assert (tmp_path / name).stat().st_size > 0
