"""SpikingGamma (seed 003): sigma-delta neurons with gamma memory, trained without surrogates,
against an LIF network trained with a surrogate gradient, in the same run.

    python benchmarks/spiking_gamma.py            # ~40 minutes on 2 cores
    python benchmarks/spiking_gamma.py --quick    # ~8 minutes (smaller data, fewer epochs)

Experiments:
  1. delay learning: one input channel of random 1-ms pulses (40-ms sequences); the target is each
     pulse as a Gaussian bump (sigma 1 ms) 6.3 ms later. A 1 -> 16 -> 1 network (K = 8) is trained online (per-step
     loss, state detached, eligibility traces) at dt = 0.25 ms; the learned delay is the peak time
     of its response to one pulse, measured at several dt. LIF baseline trained with BPTT.
  2. sequence classification: digits (8 x 8) and Fashion-MNIST (28 x 28) read row by row, each
     row held for 4 ms, trained at dt = 1 ms; SpikingGamma offline (BPTT) and online, LIF baseline.
  3. time resolution: every trained model evaluated at dt / 64 ... 2 dt (accuracy, spikes/s).
  4. gradient alignment of the online mode with BPTT, per parameter.
Writes benchmarks/results/spiking_gamma.json, spiking_gamma_delay.png, spiking_gamma_dt.png.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from _common import RESULTS, print_table, write_results

from isospike.data import load_digits, load_fashion_mnist
from isospike.data.sequences import rows_as_frames
from isospike.models.lif_sequence import LIFSequenceNet
from isospike.models.spiking_gamma import SpikingGammaNet
from isospike.train.gamma import evaluate_sequences, gradient_alignment, spiking_gamma

DELAY_MS, BUMP_SIGMA_MS, PULSE_MS, TRAIN_DT = 6.3, 1.0, 1.0, 0.25


# ---------------------------------------------------------------- experiment 1: delay learning
def pulse_task(n: int, duration_ms: float, dt: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames of one step each: input pulses (1 ms wide, ~25 Hz) and the delayed Gaussian bumps."""
    steps = int(round(duration_ms / dt))
    width = int(round(PULSE_MS / dt))
    starts = torch.rand(n, steps, generator=gen) < 0.025 * dt
    starts[:, steps - width:] = False
    x = torch.zeros(n, steps)
    for k in range(width):
        x[:, k:] += starts[:, :steps - k].float()
    x = x.clamp(max=1.0)
    t = torch.arange(steps) * dt
    y = torch.zeros(n, steps)
    for i, j in zip(*torch.nonzero(starts, as_tuple=True)):
        centre = float(t[j]) + PULSE_MS / 2 + DELAY_MS
        y[i] += torch.exp(-0.5 * ((t + dt / 2 - centre) / BUMP_SIGMA_MS) ** 2)
    return x.unsqueeze(-1), y.unsqueeze(-1)


def impulse_delay(model, dt: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Peak time (ms, parabolic interpolation) of the response to one pulse, minus the pulse centre."""
    steps = int(round(40.0 / dt))
    x = torch.zeros(steps, 1, 1)
    on = int(round(5.0 / dt))
    x[on:on + int(round(PULSE_MS / dt)), 0, 0] = 1.0
    with torch.no_grad():
        out = model(x, dt)[:, 0, 0].numpy()
    k = int(np.argmax(out))
    frac = 0.0
    if 0 < k < steps - 1:
        a, b, c = out[k - 1], out[k], out[k + 1]
        denom = a - 2 * b + c
        frac = 0.5 * (a - c) / denom if denom != 0 else 0.0
    peak = (k + frac + 0.5) * dt  # sample k covers [k dt, (k+1) dt)
    return peak - (5.0 + PULSE_MS / 2), np.arange(steps) * dt - 5.0 - PULSE_MS / 2, out


def experiment_delay(quick: bool) -> dict:
    gen = torch.Generator().manual_seed(0)
    x, y = pulse_task(96 if quick else 256, 40.0, TRAIN_DT, gen)
    epochs = 4 if quick else 10
    rows, traces = [], {}
    dts = [TRAIN_DT / 4, TRAIN_DT / 2, TRAIN_DT, TRAIN_DT * 2, TRAIN_DT * 4]
    for name in ["SpikingGamma online", "SpikingGamma offline", "LIF + surrogate (BPTT)"]:
        torch.manual_seed(0)
        if name.startswith("LIF"):
            model = LIFSequenceNet(1, [16], 1, tau_mem_ms=(1.0, 10.0), tau_out_ms=1.0, threshold=0.1)
            mode = "offline"
        else:
            model = SpikingGammaNet(1, [16], 1, K=8, tau_ms=(1.0, 3.0), theta=0.1)
            mode = "online" if "online" in name else "offline"
        t0 = time.time()
        spiking_gamma(model, (x, y), epochs=epochs, mode=mode, frame_ms=TRAIN_DT, dt_ms=TRAIN_DT, lr=0.02,
                      batch_size=16, progress=True)
        train_s = time.time() - t0
        row = {"model": name, "mode": mode, "train_s": train_s, "final_mse": model.history.epochs[-1].loss}
        for dt in dts:
            d, tt, out = impulse_delay(model, dt)
            row[f"delay_ms@{dt:g}"] = d
            traces[f"{name}@{dt:g}"] = (tt.tolist(), out.tolist())
        with torch.no_grad():
            xs = x[:32].transpose(0, 1)
            run = model.run(xs, TRAIN_DT)
        row["spikes_per_second"] = run.spikes_per_second()
        row["hidden_spikes_per_second"] = sum(v for k, v in run.spikes.items() if k != "input") / (run.batch * run.duration_s)
        rows.append(row)
    return {"target_delay_ms": DELAY_MS, "bump_sigma_ms": BUMP_SIGMA_MS, "train_dt_ms": TRAIN_DT, "dts": dts,
            "rows": rows, "traces": traces}


# ---------------------------------------------------------------- experiments 2-4: rows
def dataset_frames(name: str, n_train: int | None, n_test: int | None):
    data = load_digits() if name == "digits" else load_fashion_mnist()
    tr, te = data.train, data.test
    if n_train is not None and n_train < len(tr):
        tr = tr.subset(n_train, seed=0)
    if n_test is not None and n_test < len(te):
        te = te.subset(n_test, seed=0)
    return (rows_as_frames(tr.x), tr.y), (rows_as_frames(te.x), te.y)


def experiment_rows(name: str, quick: bool, spec: dict) -> dict:
    train, test = dataset_frames(name, spec["n_train"], spec["n_test"])
    n_in = train[0].shape[-1]
    frame_ms, dt = 4.0, 1.0
    refine = test[0][:spec["n_refine"]], test[1][:spec["n_refine"]]
    models = []
    for label, mode, quantizer in spec["models"]:
        torch.manual_seed(0)
        if label.startswith("LIF"):
            model = LIFSequenceNet(n_in, spec["hidden"], 10)
        else:
            model = SpikingGammaNet(n_in, spec["hidden"], 10, K=4, tau_ms=(4.0, 32.0), theta=0.2, quantizer=quantizer)
        align_init = gradient_alignment(model, (train[0][:64], train[1][:64]), frame_ms=frame_ms, dt_ms=dt) \
            if isinstance(model, SpikingGammaNet) else None
        t0 = time.time()
        spiking_gamma(model, train, epochs=spec["epochs"], mode=mode, frame_ms=frame_ms, dt_ms=dt, lr=spec["lr"],
                      batch_size=spec["batch_size"], progress=True)
        train_s = time.time() - t0
        res = {"model": label, "mode": mode, "quantizer": quantizer if not label.startswith("LIF") else None,
               "train_s": train_s, "history": model.history.as_dict(), "by_dt": []}
        for d in [dt / 4, dt / 2, dt, 2 * dt]:
            r = evaluate_sequences(model, test, frame_ms=frame_ms, dt_ms=d)
            res["by_dt"].append({"dt_ms": d, "accuracy": r["accuracy"], "spikes_per_second": r["spikes_per_second"],
                                 "by_population": r["spikes_per_second_by_population"], "samples": len(test[0])})
        for d in spec["refine_dts"]:
            r = evaluate_sequences(model, refine, frame_ms=frame_ms, dt_ms=d)
            base = evaluate_sequences(model, refine, frame_ms=frame_ms, dt_ms=dt)
            res["by_dt"].append({"dt_ms": d, "accuracy": r["accuracy"], "spikes_per_second": r["spikes_per_second"],
                                 "by_population": r["spikes_per_second_by_population"], "samples": len(refine[0]),
                                 "same_subset_at_train_dt": {"accuracy": base["accuracy"],
                                                             "spikes_per_second": base["spikes_per_second"]}})
        if isinstance(model, SpikingGammaNet):
            res["gradient_alignment_init"] = align_init
            res["gradient_alignment_trained"] = gradient_alignment(model, (train[0][:64], train[1][:64]),
                                                                   frame_ms=frame_ms, dt_ms=dt)
        models.append(res)
    return {"dataset": name, "train_samples": len(train[0]), "test_samples": len(test[0]), "frame_ms": frame_ms,
            "train_dt_ms": dt, "hidden": spec["hidden"], "epochs": spec["epochs"], "models": models}


# ---------------------------------------------------------------- plots
def plot(delay: dict, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    t = np.linspace(-5, 30, 701)
    axes[0].plot(t, np.exp(-0.5 * ((t - DELAY_MS) / BUMP_SIGMA_MS) ** 2), "k--", lw=1.5, label="target")
    for name, ls in [("SpikingGamma online", "-"), ("LIF + surrogate (BPTT)", ":")]:
        for dt, c in [(TRAIN_DT / 4, "C0"), (TRAIN_DT, "C1"), (TRAIN_DT * 4, "C2")]:
            tt, out = delay["traces"][f"{name}@{dt:g}"]
            axes[0].plot(tt, out, ls, color=c, lw=1.2, label=f"{name.split(' ')[0]} dt={dt:g} ms")
    axes[0].set_xlim(-5, 25)
    axes[0].set_xlabel("time after pulse centre (ms)")
    axes[0].set_ylabel("read-out")
    axes[0].set_title(f"delay learning: target {DELAY_MS} ms, trained at dt={TRAIN_DT} ms")
    axes[0].legend(fontsize=7)
    for res_set, marker in zip(rows, ["o", "s"]):
        for m in res_set["models"]:
            pts = sorted((r["dt_ms"], r["accuracy"]) for r in m["by_dt"] if r["samples"] == res_set["test_samples"])
            axes[1].plot([p[0] for p in pts], [100 * p[1] for p in pts], marker=marker, label=f"{res_set['dataset']}: {m['model']}")
    axes[1].set_xscale("log", base=2)
    axes[1].axvline(1.0, color="grey", lw=0.8, ls="--")
    axes[1].set_xlabel("evaluation step dt (ms); trained at 1 ms")
    axes[1].set_ylabel("test accuracy (%)")
    axes[1].set_title("row-by-row classification vs time resolution")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "spiking_gamma_delay.png", dpi=130)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for res_set, marker in zip(rows, ["o", "s"]):
        for m in res_set["models"]:
            pts = sorted((r["dt_ms"], r["spikes_per_second"]) for r in m["by_dt"])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=f"{res_set['dataset']}: {m['model']}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("evaluation step dt (ms); trained at 1 ms")
    ax.set_ylabel("spikes per sample-second")
    ax.set_title("spike rate vs time resolution")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "spiking_gamma_dt.png", dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-fashion", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 when other jobs share the CPU)")
    parser.add_argument("--fashion-train", type=int, default=20000, help="Fashion-MNIST training images")
    parser.add_argument("--fashion-epochs", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    q = args.quick
    started = time.time()

    delay = experiment_delay(q)
    print(f"\n== delay learning (target {DELAY_MS} ms, trained at dt = {TRAIN_DT} ms)")
    print_table(["model", "mode", *[f"delay @dt={d:g}" for d in delay["dts"]], "hidden spikes/s", "train s"],
                [[r["model"], r["mode"], *[r[f"delay_ms@{d:g}"] for d in delay["dts"]], r["hidden_spikes_per_second"],
                  r["train_s"]] for r in delay["rows"]])

    sg_models = [("SpikingGamma offline", "offline", "threshold"), ("SpikingGamma online", "online", "threshold"),
                 ("SpikingGamma offline, round", "offline", "round"), ("LIF + surrogate", "offline", None)]
    specs = {
        "digits": dict(n_train=600 if q else None, n_test=None, hidden=[64, 64], epochs=8 if q else 40, lr=1e-2,
                       batch_size=64, models=sg_models, n_refine=150, refine_dts=[1 / 16] if q else [1 / 16, 1 / 64]),
        "fashion-mnist": dict(n_train=2000 if q else args.fashion_train, n_test=1000 if q else 5000,
                              hidden=[128, 128], epochs=2 if q else args.fashion_epochs, lr=5e-3, batch_size=128,
                              models=[sg_models[0], sg_models[3]],
                              n_refine=200, refine_dts=[1 / 16]),
    }
    rows = []
    for name, spec in specs.items():
        if name == "fashion-mnist" and args.skip_fashion:
            continue
        try:
            res = experiment_rows(name, q, spec)
        except FileNotFoundError as e:
            print(f"skipping {name}: {e}")
            continue
        rows.append(res)
        print(f"\n== {name} read row by row ({res['train_samples']} train / {res['test_samples']} test, "
              f"hidden {res['hidden']}, {res['epochs']} epochs, trained at dt = 1 ms)")
        table = []
        for m in res["models"]:
            for r in sorted(m["by_dt"], key=lambda r: r["dt_ms"]):
                table.append([m["model"], r["dt_ms"], 100 * r["accuracy"], r["spikes_per_second"], r["samples"]])
        print_table(["model", "dt (ms)", "accuracy (%)", "spikes / s", "test samples"], table)
        for m in res["models"]:
            if "gradient_alignment_trained" in m:
                al = m["gradient_alignment_trained"]
                print(f"{m['model']}: online-vs-BPTT gradient cosine after training: "
                      + ", ".join(f"{k}: {v:.3f}" for k, v in al.items()))
    plot(delay, rows)
    out = write_results("spiking_gamma", {"quick": q, "delay": delay, "rows": rows,
                                          "wall_s": time.time() - started})
    print(f"\nwritten {out}, {RESULTS / 'spiking_gamma_delay.png'}, {RESULTS / 'spiking_gamma_dt.png'}")


if __name__ == "__main__":
    main()
