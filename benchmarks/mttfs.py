"""Masked TTFS, dead zone and memristive crossbars on a real transformer (seed 004, Matterhorn).

    python benchmarks/mttfs.py            # ~30 minutes on 2 cores with the models of benchmarks/ttfs.py
    python benchmarks/mttfs.py --quick    # smaller evaluation; trains a quick student if none is cached
    python benchmarks/mttfs.py --reuse    # the full run, reusing the dead-zone fine-tuned student it cached

The distilled TTFS student of benchmarks/ttfs.py (all-MiniLM-L6-v2, T = 15, 1-bit K/V, ReLU FFN,
BBC News topics; reused from runs/bench-cache/, else trained here in a short run) is evaluated with
digital level reads as:
  TTFS                 silence = level 0
  M-TTFS               silence = each layer's most frequent level on 256 training sentences (lossless)
  M-TTFS + dead zone   levels within k of it also silent, k = 1..5 (post hoc; not on the attention
                       probabilities, plus k = 2 on every layer), and k = 1, 2 after two epochs of
                       distillation with the dead zone on (full run only)
each on a digital accelerator (horowitz45: weights fetched from SRAM) and on memristive crossbars
(isospike.devices.MemristiveCrossbar: 16 conductance levels, 8-bit ADC; with 0% and 2% programming
variation; energy with the membranes integrated on the bit lines, as in Matterhorn's memristive
synapse unit, and -- for comparison -- with digital neurons keeping their membranes in SRAM). Accuracy, spikes and synaptic events per token, energy per inference by category.
Writes benchmarks/results/mttfs.json and mttfs_tradeoff.png.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from _common import RESULTS, print_table, write_results

import isospike.energy as E
from isospike.data import load_bbc_news
from isospike.devices import MemristiveCrossbar
from isospike.models.minilm import load_minilm
from isospike.train.distill import BertClassifier, distill, encode_texts, evaluate, finetune
from isospike.train.ttfs import mask_ttfs
from isospike.train.ttfs_bert import TTFSBertClassifier

SEED = {"glue_gain_points": 1.42, "energy_efficiency_x": 2.31}
PROBS_EXACT = "all but the attention probabilities"
TUNE_EPOCHS, TUNE_LR, TUNE_SCALE_LR = 2, 5e-5, 5e-3  # distillation with the dead zone on
TUNED_ZONES = (1, 2)


def not_probabilities(path: str) -> bool:
    return not path.endswith("q_probs")
CACHE = RESULTS.parents[1] / "runs" / "bench-cache"


def load_or_train(tok, bert, ds, quick: bool):
    from safetensors.torch import load_file

    teacher = BertClassifier(copy.deepcopy(bert), ds.num_classes)
    for tag in ("full", "quick"):
        t_path, s_path = CACHE / f"ttfs_teacher_{tag}.safetensors", CACHE / f"ttfs_student_{tag}.safetensors"
        if t_path.is_file() and s_path.is_file():
            teacher.load_state_dict(load_file(str(t_path)))
            student = TTFSBertClassifier(teacher.bert, teacher.head, timesteps=15, activation="relu")
            student.load_state_dict(load_file(str(s_path)), strict=False)
            print(f"reusing the teacher and TTFS student of benchmarks/ttfs.py ({tag} run)")
            return teacher, student, tag
    print("no cached student: fine-tuning a teacher and distilling a TTFS student (short run)")
    n = 600
    train = encode_texts(tok, ds.train.texts[:n], ds.train.labels[:n])
    finetune(teacher, train, epochs=1)
    student = TTFSBertClassifier(teacher.bert, teacher.head, timesteps=15, activation="relu")
    student.init_scales(train.input_ids[:64], train.attention_mask[:64])
    distill(student, teacher, train, epochs=1, lr=5e-5)
    return teacher, student, "trained-here"


def digital_reads(model: TTFSBertClassifier) -> None:
    """Level table reads (no optoelectronic device): what M-TTFS decodes with."""
    T = model.timesteps
    for q in model.quantizers().values():
        q.device = None
        q.slot_reads.copy_((T - torch.arange(T + 1, dtype=torch.float32)) / T)
        object.__setattr__(q, "population", None)


@torch.no_grad()
def activity(model: TTFSBertClassifier, sample) -> dict:
    ids, mask = sample
    model.spiking(True)
    model.reset_counts()
    model(ids, mask)
    st = model.layer_stats()
    model.spiking(False)
    tokens = int(mask.sum())
    spikes = sum(s.spikes for s in st.values() if s.kind == "neuron")
    events = sum(s.synaptic_ops for n, s in st.items() if s.kind == "ac")
    return {"spikes_per_token": spikes / tokens, "synaptic_events_per_token": events / tokens}


def energy(model: TTFSBertClassifier, sample, hardware) -> dict:
    model.spiking(True)
    rep = E.estimate(model, sample, hardware=hardware)
    model.spiking(False)
    return {"total_uj": 1e6 * rep.total_j, **{k: 1e6 * v for k, v in rep.by_category.items()},
            "ann_uj": 1e6 * rep.ann_total_j if rep.ann_total_j else None, "hardware": rep.hardware.name}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="reuse the dead-zone fine-tuned student cached by a full run")
    args = ap.parse_args()
    torch.manual_seed(0)
    started = time.time()
    tok, bert = load_minilm()
    ds = load_bbc_news(seed=0)
    test = encode_texts(tok, ds.test.texts, ds.test.labels)
    if args.quick:
        test = encode_texts(tok, ds.test.texts[:200], ds.test.labels[:200])
    calib = encode_texts(tok, ds.train.texts[:256], ds.train.labels[:256])
    teacher, student, source = load_or_train(tok, bert, ds, args.quick)
    digital_reads(student)
    sample = (test.input_ids[:32], test.attention_mask[:32])

    def calibrate(m):
        return lambda: [m(calib.input_ids[i:i + 64], calib.attention_mask[i:i + 64]) for i in range(0, len(calib), 64)]

    rows: list[dict] = []
    xbars = {"crossbar": MemristiveCrossbar(levels=16, adc_bits=8),
             "crossbar 2% var.": MemristiveCrossbar(levels=16, adc_bits=8, variation=0.02)}

    def measure(label: str, model: TTFSBertClassifier, dead_zone: int | None, scope: str = "every layer",
                crossbar_accuracy: bool = True) -> dict:
        row = {"model": label, "dead_zone": dead_zone, "dead_zone_layers": scope if dead_zone else None,
               "accuracy": evaluate(model, test), **activity(model, sample),
               "energy_horowitz45": energy(model, sample, "horowitz45")}
        for name, xbar in xbars.items():
            if name != "crossbar" and not crossbar_accuracy:
                row[f"accuracy_{name}"] = None
                continue
            placed = xbar.place(model, calibration=lambda m: [m(calib.input_ids[i:i + 64], calib.attention_mask[i:i + 64])
                                                                  for i in range(0, 128, 64)])
            row[f"accuracy_{name}"] = evaluate(placed, test) if crossbar_accuracy else None
            if name == "crossbar":
                row["energy_crossbar"] = energy(placed, sample, xbar.hardware())
                row["energy_crossbar_sram_membranes"] = energy(placed, sample, xbar.hardware(analog_integration=False))
        rows.append(row)
        print(f"{label}: {100 * row['accuracy']:.2f}%, {row['spikes_per_token']:.0f} spikes/token, "
              f"{row['energy_horowitz45']['total_uj']:.1f} uJ (horowitz45), {row['energy_crossbar']['total_uj']:.1f} uJ (crossbar)")
        return row

    with torch.no_grad():
        ids, mask, _ = test.batch(torch.arange(len(test)))
        ttfs_logits = student.eval()(ids, mask)
    measure("TTFS", student, None)
    masked = copy.deepcopy(student)
    silent = mask_ttfs(masked, calibrate(masked))
    with torch.no_grad():
        mttfs_logits = masked.eval()(ids, mask)
    same = bool(torch.allclose(ttfs_logits, mttfs_logits, atol=1e-5))
    measure("M-TTFS", masked, 0)
    # the attention probabilities have a fixed step of 1/T: a dead zone there drops every token
    # whose weight is below (k + 1/2) / T, which empties most attention rows; it is kept off them
    for k in range(1, 6):
        dz = copy.deepcopy(student)
        mask_ttfs(dz, calibrate(dz), dead_zone=k, dead_zone_layers=not_probabilities)
        measure(f"M-TTFS, dead zone {k}", dz, k, PROBS_EXACT, crossbar_accuracy=False)
    dz = copy.deepcopy(student)
    mask_ttfs(dz, calibrate(dz), dead_zone=2)
    measure("M-TTFS, dead zone 2 (probabilities too)", dz, 2, crossbar_accuracy=False)
    if not args.quick:
        train = encode_texts(tok, ds.train.texts, ds.train.labels)
        for k in TUNED_ZONES:
            tuned = copy.deepcopy(student)
            mask_ttfs(tuned, calibrate(tuned), dead_zone=k, dead_zone_layers=not_probabilities)
            tuned_path = CACHE / f"mttfs_tuned_dz{k}.safetensors"
            if args.reuse and tuned_path.is_file():
                from safetensors.torch import load_file

                tuned.load_state_dict(load_file(str(tuned_path)), strict=False)
                print(f"reusing the dead-zone fine-tuned student ({tuned_path})")
            else:
                distill(tuned, teacher, train, epochs=TUNE_EPOCHS, lr=TUNE_LR, scale_lr=TUNE_SCALE_LR, seed=1,
                        desc=f"distillation with dead zone {k} on")
                from safetensors.torch import save_file

                from isospike._io import atomic_write

                CACHE.mkdir(parents=True, exist_ok=True)
                state = {name: v.contiguous() for name, v in tuned.state_dict().items()}
                atomic_write(tuned_path, lambda p, state=state: save_file(state, str(p)))
            mask_ttfs(tuned, calibrate(tuned), dead_zone=k, dead_zone_layers=not_probabilities)
            measure(f"M-TTFS, dead zone {k}, fine-tuned", tuned, k, PROBS_EXACT)

    def pct(v):
        return "-" if v is None else 100 * v

    table = [[r["model"], 100 * r["accuracy"], pct(r["accuracy_crossbar"]), pct(r["accuracy_crossbar 2% var."]),
              r["spikes_per_token"], r["synaptic_events_per_token"], r["energy_horowitz45"]["total_uj"],
              r["energy_horowitz45"]["data_movement"], r["energy_crossbar"]["total_uj"],
              r["energy_crossbar_sram_membranes"]["total_uj"]] for r in rows]
    print_table(["model", "acc %", "acc % crossbar", "acc % xbar 2% var", "spikes/token", "events/token",
                 "uJ horowitz45", "of which data", "uJ crossbar", "uJ xbar, SRAM membranes"], table)
    base, mt = rows[0], rows[1]
    ratio_dig = base["energy_horowitz45"]["total_uj"] / mt["energy_horowitz45"]["total_uj"]
    ratio_xb = base["energy_horowitz45"]["total_uj"] / mt["energy_crossbar"]["total_uj"]
    # Matterhorn's recipe as far as this run goes: M-TTFS + dead zone (fine-tuned), on crossbars and digitally
    finals = [r for r in rows if "fine-tuned" in r["model"]] or [rows[-1]]
    comparisons = [{
        "ours": final["model"], "against": "TTFS (Otters-style) on the same student",
        "accuracy_points_same_digital_hardware": 100 * (final["accuracy"] - base["accuracy"]),
        "accuracy_points_on_crossbars": 100 * (final["accuracy_crossbar"] - base["accuracy_crossbar"]),
        "energy_ratio_vs_ttfs_same_digital_hardware": base["energy_horowitz45"]["total_uj"] / final["energy_horowitz45"]["total_uj"],
        "energy_ratio_vs_ttfs_on_crossbars": base["energy_crossbar"]["total_uj"] / final["energy_crossbar"]["total_uj"],
        "energy_ratio_vs_ttfs_digital": base["energy_horowitz45"]["total_uj"] / final["energy_crossbar"]["total_uj"],
    } for final in finals]
    print(f"\nM-TTFS logits equal TTFS logits (tolerance 1e-5): {same}; silent levels: {silent}")
    print(f"energy TTFS / M-TTFS on horowitz45: {ratio_dig:.2f}x; TTFS digital / M-TTFS on crossbars: {ratio_xb:.2f}x")
    for c in comparisons:
        print(f"{c['ours']} vs TTFS: digital {c['accuracy_points_same_digital_hardware']:+.2f} points at "
              f"{c['energy_ratio_vs_ttfs_same_digital_hardware']:.2f}x less energy; on crossbars "
              f"{c['accuracy_points_on_crossbars']:+.2f} points at {c['energy_ratio_vs_ttfs_on_crossbars']:.2f}x; "
              f"on crossbars vs TTFS digital {c['energy_ratio_vs_ttfs_digital']:.0f}x")
    print(f"seed paper (Matterhorn, GLUE, BERT-scale): +{SEED['glue_gain_points']} points over prior SNNs, "
          f"{SEED['energy_efficiency_x']}x energy efficiency")
    plot(rows)
    path = write_results("mttfs", {
        "task": "bbc-news topic (5 classes)", "test_samples": len(test), "student_source": source,
        "silent_levels": silent, "mttfs_logits_equal_ttfs": same, "rows": rows,
        "energy_ratio_ttfs_over_mttfs_horowitz45": ratio_dig, "energy_ratio_ttfs_digital_over_mttfs_crossbar": ratio_xb,
        "comparison_with_seed": comparisons, "seed_paper": SEED, "wall_s": time.time() - started,
    })
    print(f"written: {path}, {RESULTS / 'mttfs_tradeoff.png'}")


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    sweep = [r for r in rows if r["dead_zone"] is not None and "fine-tuned" not in r["model"]
             and r["dead_zone_layers"] in (None, PROBS_EXACT)]
    ax.plot([r["spikes_per_token"] for r in sweep], [100 * r["accuracy"] for r in sweep], "o-",
            label="M-TTFS, dead zone k (post hoc; not on attention probabilities)")
    every = [r for r in rows if r["dead_zone_layers"] == "every layer"]
    if every:
        ax.plot([r["spikes_per_token"] for r in every], [100 * r["accuracy"] for r in every], "v", color="tab:gray",
                label="k=2 on every layer (probabilities too)")
    for r in sweep:
        below = r["dead_zone"] % 2 == 1 and r["dead_zone"] > 1  # alternate sides: the large-k points crowd
        ax.annotate(f"k={r['dead_zone']}", (r["spikes_per_token"], 100 * r["accuracy"]), textcoords="offset points",
                    xytext=(4, -11 if below else 4), fontsize=8)
    ax.plot([rows[0]["spikes_per_token"]], [100 * rows[0]["accuracy"]], "s", color="k", label="TTFS (k=0: M-TTFS)")
    tuned = [r for r in rows if "fine-tuned" in r["model"]]
    if tuned:
        ax.plot([r["spikes_per_token"] for r in tuned], [100 * r["accuracy"] for r in tuned], "*", ms=12,
                color="tab:red", label="after fine-tuning with the dead zone on")
        for r in tuned:
            ax.annotate(f"k={r['dead_zone']}", (r["spikes_per_token"], 100 * r["accuracy"]), textcoords="offset points",
                        xytext=(6, -4), fontsize=8, color="tab:red")
    ax.set_xlabel("spikes per token")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs sparsity (BBC News, MiniLM-L6 TTFS student)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    names = [r["model"].replace("M-TTFS, dead zone", "k =").replace(", fine-tuned", " FT")
             .replace(" (probabilities too)", " all") for r in rows]
    x = list(range(len(rows)))
    series = [("digital, horowitz45 (weights fetched from SRAM)", "energy_horowitz45", "tab:orange"),
              ("crossbars, membranes in SRAM", "energy_crossbar_sram_membranes", "tab:blue"),
              ("crossbars, analog integration (MSU)", "energy_crossbar", "tab:purple")]
    width = 0.27
    for j, (label, key, color) in enumerate(series):
        vals = [r[key]["total_uj"] if key in r else float("nan") for r in rows]
        ax.bar([i + (j - 1) * width for i in x], vals, width, color=color, label=label)
    for i, r in enumerate(rows):
        e = r["energy_horowitz45"]
        ax.annotate(f"{100 * e['data_movement'] / e['total_uj']:.0f}%", (i - width, e["total_uj"]), ha="center",
                    va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("energy per inference (uJ, log scale)")
    ax.set_title("energy per inference (% over bars: data movement share, digital)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    atomic_savefig(fig, RESULTS / "mttfs_tradeoff.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
