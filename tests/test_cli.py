import json
import subprocess
import sys

import pytest

from isospike.cli import main


def test_demo_writes_report_plot_and_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "3", "--timesteps", "1,4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "SNN acc (%)" in printed and "spikes / sample" in printed
    report = (out / "report.md").read_text()
    assert "| T | ANN acc (%) | SNN acc (%)" in report and "accuracy_vs_timesteps.png" in report
    assert (out / "accuracy_vs_timesteps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    assert [r["timesteps"] for r in results["rows"]] == [1, 4]
    assert 0.5 < results["ann_accuracy"] <= 1.0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("args", [["demo", "--timesteps", "0,4"], ["demo", "--timesteps", "a"], ["nosuch"]])
def test_bad_arguments_exit_2_with_a_message(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_console_script_version():
    out = subprocess.run([sys.executable, "-m", "isospike.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("isospike ")


def test_train_writes_model_report_and_resumes(tmp_path, capsys):
    import torch

    from isospike.train import load_trained

    out = tmp_path / "nq"
    args = ["train", "--dataset", "digits", "--ann-epochs", "2", "--epochs", "1", "--timesteps", "1,4",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "SNN acc (%)" in printed and "ReLU ANN test accuracy" in printed
    for name in ("report.md", "results.json", "weights.safetensors", "model.json", "ann.safetensors",
                 "checkpoints/checkpoint.safetensors"):
        assert (out / name).is_file(), name
    model = load_trained(out)
    x = torch.rand(3, 1, 8, 8)
    before = model(x)
    assert main(args) == 0  # rerun: reuses the ANN and the finished checkpoint
    assert "reusing the ReLU ANN" in capsys.readouterr().out
    assert torch.equal(load_trained(out)(x), before)


def test_train_reports_missing_data_and_bad_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ISOSPIKE_CIFAR", str(tmp_path))
    assert main(["train", "--dataset", "cifar10", "--out", str(tmp_path / "x"), "--no-progress"]) == 1
    assert "CIFAR-10 not found" in capsys.readouterr().err
    assert main(["train", "--model", "transformer-xl", "--out", str(tmp_path / "y"), "--no-progress"]) == 1
    assert "unknown model" in capsys.readouterr().err


def test_energy_command_writes_reports(tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["energy", "--samples", "16", "--timesteps", "4", "--hardware", "horowitz45,loihi", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "horowitz45" in printed and "data movement" in printed and "ANN / SNN" in printed
    data = json.loads((out / "energy.json").read_text())
    assert set(data["results"]) == {"horowitz45", "loihi"}
    assert data["results"]["loihi"]["full"]["total_j"] > 0
    assert (out / "energy_loihi.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["energy", "--hardware", "quantum", "--out", str(out)]) == 1
    assert "unknown hardware" in capsys.readouterr().err
