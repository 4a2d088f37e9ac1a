"""Masked TTFS, dead zone and memristive crossbars on a real transformer (seed 004, Matterhorn).

    python benchmarks/mttfs.py --models-only --reuse  # train and cache the models only: the teacher and
                                              # student as benchmarks/ttfs.py trains them (reused from its
                                              # cache when there), then the two dead-zone fine-tuned students
    python benchmarks/mttfs.py --reuse    # the full evaluation, every model from the cache where present
    python benchmarks/mttfs.py --quick    # smaller evaluation (200 test sentences; a 600-sentence student)

Everything runs through the general path (issue 31): the student is benchmarks/ttfs.py's
``isospike.train.ttfs_bert.ttfs_bert`` (isospike.convert(teacher, coding="ttfs", front="sites",
products="binary"): all-MiniLM-L6-v2, T = 15, 1-bit K/V, ReLU FFN, BBC News topics) distilled by
isospike.train.distill.distill, and its silent levels are chosen by isospike.train.mask_sites. With
digital level reads, it is evaluated as:
  TTFS (signed)        silence = level 0 (sign-and-magnitude channels: isospike's TTFS)
  TTFS, seed baseline  silence = the lowest level (Matterhorn's TTFS: levels offset to be unsigned,
                       q + T, so -T is silent on signed sites and 0 fires; unsigned sites as above)
  M-TTFS               silence = each site's most frequent level on 256 training sentences (lossless)
  M-TTFS + dead zone   levels within k of it also silent, k = 1..5 (post hoc; not on the attention
                       probabilities, plus k = 2 on every site), and k = 1, 2 after two epochs of
                       distillation with the dead zone on
each on a digital accelerator (horowitz45, fp32: every synaptic event reads its weight from a memory
sized to the layer -- SRAM for the 0.6 MB Q/K/V/O matrices, DRAM for the 2.4 MB FFN ones) and on
memristive crossbars (isospike.devices.MemristiveCrossbar.place on the site-coded network: 16
conductance levels, 8-bit ADC; with 0% and 2% programming variation; energy with the membranes
integrated on the bit lines, as in Matterhorn's memristive synapse unit, and -- for comparison --
with digital neurons keeping their membranes in SRAM). Accuracy on the test split; spikes, synaptic
events, the share of silent neurons and energy per inference by category (data-movement share) on
32 test sentences run one at a time at their own length (no padding positions). Writes
benchmarks/results/mttfs.json (--quick: mttfs_quick.json) and mttfs_tradeoff.png.
"""

from __future__ import annotations

import argparse
import copy
import re
import time

import torch

import isospike.energy as E
from _common import RESULTS, print_table, write_results
from isospike.data import load_bbc_news
from isospike.devices import MemristiveCrossbar, OptoelectronicSynapse
from isospike.models.minilm import load_minilm
from isospike.train import mask_sites
from isospike.train.distill import BertClassifier, distill, encode_texts, evaluate, finetune
from isospike.train.ttfs_bert import set_synapse, ttfs_bert

SEED = {"glue_gain_points": 1.42, "energy_efficiency_x": 2.31, "data_movement_share": 0.80,
        "silent_share_dead_zone_3": 0.952}  # the last one from summaries of the paper (unverified)
SIGNED, SEED_TTFS, MTTFS = "TTFS (signed, 0 silent)", "TTFS, seed baseline (lowest level silent)", "M-TTFS"
ENERGY_SENTENCES = 32  # counts and energy: test sentences run one at a time at their own length
PROBS_EXACT = "all but the attention probabilities"
TUNE_EPOCHS, TUNE_LR = 2, 5e-5  # distillation with the dead zone on
TUNED_ZONES = (1, 2)
CACHE = RESULTS.parents[1] / "runs" / "bench-cache"
# the site of a BERT layer's eager attention whose operand is the softmax output: P V, the second
# activation x activation product of the layer ("...attention.self.product#1"; QK^T is "...product")
PROBABILITIES = re.compile(r"\.attention\.self\.product#1\.a$")
# the activation each site codes, by its site name inside a layer (for the per-activation silent shares)
ACTIVATIONS = {"attention.self.query": "qkv_in", "attention.self.product.a": "query",
               "attention.self.product#1.a": "probs", "attention.output.dense": "ctx", "intermediate.dense": "ff_in",
               "output.dense": "ff_mid", "head": "pool"}


def not_probabilities(site: str) -> bool:
    """The dead zone's scope: every site but the attention probabilities (a dead zone there drops
    every token whose weight is below (k + 1/2) steps, which empties most attention rows)."""
    return PROBABILITIES.search(site) is None


def teacher_and_student(tok, bert, ds, quick: bool, reuse: bool) -> tuple[BertClassifier, torch.nn.Module, str]:
    """The fine-tuned teacher and the distilled TTFS student of benchmarks/ttfs.py (its cache,
    full run first), else trained here with its recipe (teacher 2 epochs; the site student --
    ttfs_bert, In2O3 reads, steps from 64 sentences -- distilled 3 epochs; --quick: 600
    sentences, one epoch each) and cached under its names."""
    from safetensors.torch import load_file

    from ttfs import cache_path, save_model

    teacher = BertClassifier(copy.deepcopy(bert), ds.num_classes)
    n = 600 if quick else len(ds.train)
    train = encode_texts(tok, ds.train.texts[:n], ds.train.labels[:n])
    for tag in ("full", "full_kd1") if not quick else ("full", "full_kd1", "quick"):
        t_path = cache_path("teacher", tag.removesuffix("_kd1"))
        s_path = cache_path("student", tag)
        if reuse and t_path.is_file() and s_path.is_file():
            teacher.load_state_dict(load_file(str(t_path)))
            student = ttfs_bert(teacher, train, timesteps=15, synapse=OptoelectronicSynapse.in2o3())
            student.load_state_dict(load_file(str(s_path)))
            print(f"reusing the teacher and TTFS student of benchmarks/ttfs.py ({tag} run)")
            return teacher, student, f"benchmarks/ttfs.py cache ({tag})"
    tag = "quick" if quick else "full"
    print(f"no cached student: fine-tuning a teacher and distilling a TTFS student ({tag} recipe of benchmarks/ttfs.py)")
    t0 = time.time()
    t_path = cache_path("teacher", tag)
    if reuse and t_path.is_file():  # a run interrupted while distilling: its teacher was cached
        teacher.load_state_dict(load_file(str(t_path)))
        print(f"reusing the cached {tag} teacher")
    else:
        finetune(teacher, train, epochs=1 if quick else 2)
        save_model(teacher, "teacher", tag)
    student = ttfs_bert(teacher, train, timesteps=15, synapse=OptoelectronicSynapse.in2o3())
    distill(student, teacher, train, epochs=1 if quick else 3, lr=5e-5)
    save_model(student, "student", tag)
    print(f"trained and cached in {CACHE} ({time.time() - t0:.0f} s)")
    return teacher, student, f"trained here ({tag} recipe of benchmarks/ttfs.py)"


def digital_reads(student: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``student`` whose TTFS sites decode with the digital level table (level q is q
    steps; no optoelectronic device): what masked TTFS decodes with. Level 0 stays silent."""
    model = copy.deepcopy(student)
    set_synapse(model, None)
    mask_sites(model, silence="zero")  # rebuilds each population without the device's level table
    return model


def masked(base: torch.nn.Module, calibrate, **how) -> tuple[torch.nn.Module, dict[str, int]]:
    """A copy of ``base`` (digital reads) with its silent levels chosen by
    :func:`isospike.train.mask_sites` (``how``: silence, dead_zone, dead_zone_sites)."""
    model = copy.deepcopy(base)
    chosen = mask_sites(model, calibrate, **how)  # the calibration is read by silence="mode" only
    return model, chosen


def calibration_batches(data, n: int, rows: int = 64) -> list[dict[str, torch.Tensor]]:
    """The first ``n`` sentences of ``data`` as keyword batches of ``rows``."""
    n = min(n, len(data))
    return [{"input_ids": data.input_ids[i:min(i + rows, n)], "attention_mask": data.attention_mask[i:min(i + rows, n)]}
            for i in range(0, n, rows)]


def sentences(data, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first n sentences of ``data``, each at its own length: every position is a real token
    (padding to the batch's length would add neurons, spikes and energy no inference has)."""
    out = []
    for i in range(min(n, len(data))):
        length = int(data.attention_mask[i].sum())
        out.append((data.input_ids[i:i + 1, :length], data.attention_mask[i:i + 1, :length]))
    return out


@torch.no_grad()
def counted(model: torch.nn.Module, sample) -> list[E.NetworkActivity]:
    """The spiking network's per-site counts on each sentence of ``sample``."""
    return [E.collect(model, s) for s in sample]


def layer_kind(name: str) -> str:
    """The activation a site row codes, without its layer index
    ('bert.encoder.layer.3.attention.self.product#1.a.input' -> 'probs')."""
    inner = re.sub(r"^.*?\.layer\.\d+\.", "", name).removesuffix(".input")
    return ACTIVATIONS.get(inner, inner)


def activity(acts: list[E.NetworkActivity], sample) -> dict:
    """Spikes and synaptic events per token, and the share of neurons that stay silent (overall and
    per kind of activation), over the sentences of ``sample``."""
    tokens = sum(int(m.sum()) for _, m in sample)
    pops = [layer for a in acts for layer in a.layers if layer.kind == "neuron"]
    spikes = sum(p.spikes for p in pops)
    neurons = sum(p.neuron_updates / p.timesteps for p in pops)  # one window of T updates per neuron
    events = sum(layer.acs for a in acts for layer in a.layers if layer.kind == "ac")
    by_kind: dict[str, list[float]] = {}
    for p in pops:
        k = by_kind.setdefault(layer_kind(p.name), [0.0, 0.0])
        k[0] += p.spikes
        k[1] += p.neuron_updates / p.timesteps
    return {"spikes_per_token": spikes / tokens, "synaptic_events_per_token": events / tokens,
            "neurons_per_token": neurons / tokens, "silent_share": 1 - spikes / neurons,
            "silent_share_by_activation": {k: 1 - v[0] / v[1] for k, v in by_kind.items()}}


def energy(acts: list[E.NetworkActivity], hardware) -> dict:
    """Energy per inference (uJ) by category: the mean over the sentences of ``acts``."""
    reports = [E.price(a, hardware) for a in acts]
    n = len(reports)
    total = sum(r.total_j for r in reports) / n
    cats = {k: sum(r.by_category[k] for r in reports) / n for k in reports[0].by_category}
    ann = [r.ann_total_j for r in reports]
    return {"total_uj": 1e6 * total, **{k: 1e6 * v for k, v in cats.items()},
            "data_movement_share": cats["data_movement"] / total if total else None,
            "ann_uj": 1e6 * sum(ann) / n if all(a is not None for a in ann) else None,
            "hardware": reports[0].hardware.name}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="take the teacher, the student and the dead-zone fine-tuned students from runs/bench-cache/")
    ap.add_argument("--models-only", action="store_true",
                    help="train and cache the teacher, the student and the dead-zone students if none is cached, then stop")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.time()
    tok, bert = load_minilm()
    ds = load_bbc_news(seed=0)
    test = encode_texts(tok, ds.test.texts, ds.test.labels)
    if args.quick:
        test = encode_texts(tok, ds.test.texts[:200], ds.test.labels[:200])
    calib = calibration_batches(encode_texts(tok, ds.train.texts[:256], ds.train.labels[:256]), 256)
    teacher, trained, source = teacher_and_student(tok, bert, ds, args.quick, args.reuse)
    student = digital_reads(trained)
    sample = sentences(test, ENERGY_SENTENCES)

    def tuned_student(k: int, reuse: bool) -> torch.nn.Module:
        """The student distilled for two more epochs with dead zone k on (cached in runs/bench-cache/),
        its silent levels chosen again afterwards (its weights moved)."""
        from safetensors.torch import load_file, save_file

        from isospike._io import atomic_write

        tuned, _ = masked(student, calib, dead_zone=k, dead_zone_sites=not_probabilities)
        tuned_path = CACHE / f"mttfs_sites_tuned_dz{k}{'_quick' if args.quick else ''}.safetensors"
        if reuse and tuned_path.is_file():
            tuned.load_state_dict(load_file(str(tuned_path)))
            print(f"reusing the dead-zone fine-tuned student ({tuned_path})")
        else:
            n = 600 if args.quick else len(ds.train)
            train = encode_texts(tok, ds.train.texts[:n], ds.train.labels[:n])
            distill(tuned, teacher, train, epochs=1 if args.quick else TUNE_EPOCHS, lr=TUNE_LR, seed=1,
                    desc=f"distillation with dead zone {k} on")
            CACHE.mkdir(parents=True, exist_ok=True)
            state = {name: v.detach().contiguous().clone() for name, v in tuned.state_dict().items()}
            atomic_write(tuned_path, lambda p, state=state: save_file(state, str(p)))
        mask_sites(tuned, calib, dead_zone=k, dead_zone_sites=not_probabilities)
        return tuned

    if args.models_only:
        print(f"models ready ({source}); teacher {100 * evaluate(teacher, test):.2f}%, "
              f"student {100 * evaluate(student, test):.2f}%", flush=True)
        for k in TUNED_ZONES:
            t0 = time.time()
            tuned_student(k, reuse=True)
            print(f"dead zone {k}: fine-tuned student ready ({time.time() - t0:.0f} s)", flush=True)
        return

    rows: list[dict] = []
    xbars = {"crossbar": MemristiveCrossbar(levels=16, adc_bits=8),
             "crossbar 2% var.": MemristiveCrossbar(levels=16, adc_bits=8, variation=0.02)}

    def measure(label: str, model: torch.nn.Module, dead_zone: int | None, scope: str = "every layer",
                crossbar_accuracy: bool = True, silence: str = "mode") -> dict:
        acts = counted(model, sample)
        row = {"model": label, "silence": silence, "dead_zone": dead_zone,
               "dead_zone_layers": scope if dead_zone else None, "accuracy": evaluate(model, test),
               **activity(acts, sample), "energy_horowitz45": energy(acts, "horowitz45")}
        for name, xbar in xbars.items():
            if name != "crossbar" and not crossbar_accuracy:
                row[f"accuracy_{name}"] = None
                continue
            placed = xbar.place(model, calibration=lambda m: [m(**b) for b in calib[:2]])
            row[f"accuracy_{name}"] = evaluate(placed, test) if crossbar_accuracy else None
            if name == "crossbar":
                placed_acts = counted(placed, sample)
                row["energy_crossbar"] = energy(placed_acts, E.crossbar_hardware(xbar))
                row["energy_crossbar_sram_membranes"] = energy(placed_acts, E.crossbar_hardware(xbar, analog_integration=False))
        rows.append(row)
        print(f"{label}: {100 * row['accuracy']:.2f}%, {row['spikes_per_token']:.0f} spikes/token, "
              f"{100 * row['silent_share']:.1f}% silent, {row['energy_horowitz45']['total_uj']:.1f} uJ (horowitz45, "
              f"{100 * row['energy_horowitz45']['data_movement_share']:.0f}% data movement), "
              f"{row['energy_crossbar']['total_uj']:.1f} uJ (crossbar)", flush=True)
        return row

    with torch.no_grad():
        ids, mask, _ = test.batch(torch.arange(len(test)))
        ttfs_logits = student(ids, mask)
    measure(SIGNED, student, None, silence="zero")
    seed_ttfs, _ = masked(student, calib, silence="lowest")  # offset levels, the lowest one silent
    with torch.no_grad():
        seed_logits = seed_ttfs(ids, mask)
    measure(SEED_TTFS, seed_ttfs, None, silence="lowest")
    mttfs, silent = masked(student, calib)
    with torch.no_grad():
        mttfs_logits = mttfs(ids, mask)
    same = bool(torch.equal(ttfs_logits, mttfs_logits))
    same_seed = bool(torch.equal(ttfs_logits, seed_logits))
    measure(MTTFS, mttfs, 0)
    for k in range(1, 6):
        dz, _ = masked(student, calib, dead_zone=k, dead_zone_sites=not_probabilities)
        measure(f"M-TTFS, dead zone {k}", dz, k, PROBS_EXACT, crossbar_accuracy=False)
    dz, _ = masked(student, calib, dead_zone=2)
    measure("M-TTFS, dead zone 2 (probabilities too)", dz, 2, crossbar_accuracy=False)
    for k in TUNED_ZONES:
        measure(f"M-TTFS, dead zone {k}, fine-tuned", tuned_student(k, args.reuse), k, PROBS_EXACT)

    def pct(v):
        return "-" if v is None else 100 * v

    by = {r["model"]: r for r in rows}
    base, seed_row, mt = by[SIGNED], by[SEED_TTFS], by[MTTFS]

    def e(r, hw="energy_horowitz45"):
        return r[hw]["total_uj"]

    for r in rows:  # the seed's terms: energy of its TTFS baseline over this variant's, on each hardware
        r["energy_ratio_seed_ttfs_over_this"] = {hw: e(seed_row, f"energy_{hw}") / e(r, f"energy_{hw}")
                                                 for hw in ("horowitz45", "crossbar", "crossbar_sram_membranes")}

    table = [[r["model"], 100 * r["accuracy"], pct(r["accuracy_crossbar"]), pct(r["accuracy_crossbar 2% var."]),
              r["spikes_per_token"], 100 * r["silent_share"], r["synaptic_events_per_token"],
              r["energy_horowitz45"]["total_uj"], 100 * r["energy_horowitz45"]["data_movement_share"],
              r["energy_ratio_seed_ttfs_over_this"]["horowitz45"], r["energy_crossbar"]["total_uj"],
              100 * r["energy_crossbar"]["data_movement_share"], r["energy_ratio_seed_ttfs_over_this"]["crossbar"],
              r["energy_crossbar_sram_membranes"]["total_uj"]] for r in rows]
    print_table(["model", "acc %", "acc % crossbar", "acc % xbar 2% var", "spikes/token", "silent %", "events/token",
                 "uJ horowitz45", "data mov. %", "seed TTFS / this", "uJ crossbar", "data mov. %", "seed TTFS / this",
                 "uJ xbar, SRAM membranes"], table)

    ratio_dig = e(base) / e(mt)
    ratio_xb = e(base) / e(mt, "energy_crossbar")
    # M-TTFS against the TTFS the seed defines (lowest level silent) and against ours (0 silent)
    seed_terms = {
        "codings": {label: {"accuracy": r["accuracy"], "spikes_per_token": r["spikes_per_token"],
                            "silent_share": r["silent_share"], "neurons_per_token": r["neurons_per_token"],
                            "data_movement_share_horowitz45": r["energy_horowitz45"]["data_movement_share"],
                            "data_movement_share_crossbar": r["energy_crossbar"]["data_movement_share"],
                            "energy_uj_horowitz45": e(r), "energy_uj_crossbar": e(r, "energy_crossbar")}
                    for label, r in ((SEED_TTFS, seed_row), (SIGNED, base), (MTTFS, mt))},
        "spikes_saved_by_mttfs_vs_seed_ttfs": 1 - mt["spikes_per_token"] / seed_row["spikes_per_token"],
        "spikes_saved_by_mttfs_vs_signed_ttfs": 1 - mt["spikes_per_token"] / base["spikes_per_token"],
        "energy_ratio_seed_ttfs_over_mttfs_horowitz45": e(seed_row) / e(mt),
        "energy_ratio_signed_ttfs_over_mttfs_horowitz45": e(base) / e(mt),
        "energy_ratio_seed_ttfs_over_mttfs_crossbar": e(seed_row, "energy_crossbar") / e(mt, "energy_crossbar"),
        "dead_zone_silent_share": {r["dead_zone"]: r["silent_share"] for r in rows
                                   if r["dead_zone"] and r["dead_zone_layers"] == PROBS_EXACT and "fine-tuned" not in r["model"]},
        "seed_logits_equal_signed_ttfs": same_seed,
    }
    # Matterhorn's recipe as far as this run goes: M-TTFS + dead zone (fine-tuned), on crossbars and digitally
    finals = [r for r in rows if "fine-tuned" in r["model"]] or [rows[-1]]
    comparisons = [{
        "ours": final["model"], "against": f"{ref_label} on the same student",
        "accuracy_points_same_digital_hardware": 100 * (final["accuracy"] - ref["accuracy"]),
        "accuracy_points_on_crossbars": None if final["accuracy_crossbar"] is None
        else 100 * (final["accuracy_crossbar"] - ref["accuracy_crossbar"]),
        "energy_ratio_vs_ttfs_same_digital_hardware": e(ref) / e(final),
        "energy_ratio_vs_ttfs_on_crossbars": e(ref, "energy_crossbar") / e(final, "energy_crossbar"),
        "energy_ratio_vs_ttfs_digital": e(ref) / e(final, "energy_crossbar"),
    } for final in finals for ref_label, ref in ((SEED_TTFS, seed_row), (SIGNED, base))]
    print(f"\nM-TTFS logits equal TTFS logits (identical): {same}; seed TTFS logits equal: {same_seed}; "
          f"silent levels: {silent}")
    for label, c in seed_terms["codings"].items():
        print(f"{label}: {100 * c['accuracy']:.2f}%, {c['spikes_per_token']:.0f} spikes/token, "
              f"{100 * c['silent_share']:.1f}% silent, data movement {100 * c['data_movement_share_horowitz45']:.1f}% "
              f"of {c['energy_uj_horowitz45']:.0f} uJ (horowitz45)")
    print(f"M-TTFS saves {100 * seed_terms['spikes_saved_by_mttfs_vs_seed_ttfs']:.1f}% of the seed TTFS's spikes "
          f"({seed_terms['energy_ratio_seed_ttfs_over_mttfs_horowitz45']:.2f}x energy, horowitz45) and "
          f"{100 * seed_terms['spikes_saved_by_mttfs_vs_signed_ttfs']:.1f}% of signed TTFS's "
          f"({seed_terms['energy_ratio_signed_ttfs_over_mttfs_horowitz45']:.2f}x)")
    print("dead zone (post hoc) silent share: " + ", ".join(
        f"k={k}: {100 * v:.1f}%" for k, v in seed_terms["dead_zone_silent_share"].items()) + " (seed: 95.2% at k = 3)")
    for c in comparisons:
        xb_points = float("nan") if c["accuracy_points_on_crossbars"] is None else c["accuracy_points_on_crossbars"]
        print(f"{c['ours']} vs {c['against']}: digital {c['accuracy_points_same_digital_hardware']:+.2f} points at "
              f"{c['energy_ratio_vs_ttfs_same_digital_hardware']:.2f}x less energy; on crossbars "
              f"{xb_points:+.2f} points at "
              f"{c['energy_ratio_vs_ttfs_on_crossbars']:.2f}x; "
              f"on crossbars vs TTFS digital {c['energy_ratio_vs_ttfs_digital']:.0f}x")
    print(f"seed paper (Matterhorn, GLUE, BERT-scale): +{SEED['glue_gain_points']} points over prior SNNs, "
          f"{SEED['energy_efficiency_x']}x energy efficiency, data movement ~{100 * SEED['data_movement_share']:.0f}% "
          f"of SNN energy, up to {100 * SEED['silent_share_dead_zone_3']:.1f}% silent at k = 3")
    plot(rows, RESULTS / ("mttfs_tradeoff_quick.png" if args.quick else "mttfs_tradeoff.png"))
    name = "mttfs_quick" if args.quick else "mttfs"
    path = write_results(name, {
        "task": "bbc-news topic (5 classes)", "test_samples": len(test), "student_source": source,
        "path": "general: isospike.train.ttfs_bert.ttfs_bert (isospike.convert front='sites', products='binary') + "
                "isospike.train.distill + isospike.train.mask_sites + MemristiveCrossbar.place",
        "energy_sentences": len(sample), "energy_tokens": sum(int(m.sum()) for _, m in sample),
        "silent_levels": silent, "mttfs_logits_equal_ttfs": same, "rows": rows,
        "energy_ratio_ttfs_over_mttfs_horowitz45": ratio_dig, "energy_ratio_ttfs_digital_over_mttfs_crossbar": ratio_xb,
        "seed_terms": seed_terms, "comparison_with_seed": comparisons, "seed_paper": SEED,
        "wall_s": time.time() - started,
    })
    print(f"written: {path}, {RESULTS / (name.replace('mttfs', 'mttfs_tradeoff') + '.png')}")


SHORT = {SIGNED: "TTFS, 0 silent", SEED_TTFS: "seed TTFS", MTTFS: "M-TTFS"}


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isospike._io import atomic_savefig

    fig, axes = plt.subplots(1, 3, figsize=(18, 5.4), gridspec_kw={"width_ratios": [1, 1, 1.1]})
    ax = axes[0]
    sweep = [r for r in rows if r["dead_zone"] is not None and "fine-tuned" not in r["model"]
             and r["dead_zone_layers"] in (None, PROBS_EXACT)]
    ax.plot([r["spikes_per_token"] for r in sweep], [100 * r["accuracy"] for r in sweep], "o-",
            label="M-TTFS + dead zone k, post hoc (probabilities exact)")
    every = [r for r in rows if r["dead_zone_layers"] == "every layer"]
    if every:
        ax.plot([r["spikes_per_token"] for r in every], [100 * r["accuracy"] for r in every], "v", color="tab:gray",
                label="k=2, probabilities too")
    for r in sweep:
        k = r["dead_zone"]  # the large-k points crowd: labelled below them
        offset = (3, -12) if k >= 3 else (4, 4)
        ax.annotate(f"k={k}", (r["spikes_per_token"], 100 * r["accuracy"]), textcoords="offset points",
                    xytext=offset, fontsize=8)
    by = {r["model"]: r for r in rows}
    ax.plot([by[SIGNED]["spikes_per_token"]], [100 * by[SIGNED]["accuracy"]], "s", color="k",
            label="signed TTFS, 0 silent (= M-TTFS, k=0)")
    ax.plot([by[SEED_TTFS]["spikes_per_token"]], [100 * by[SEED_TTFS]["accuracy"]], "D", color="tab:green",
            label="seed's TTFS baseline (lowest level silent)")
    tuned = [r for r in rows if "fine-tuned" in r["model"]]
    if tuned:
        ax.plot([r["spikes_per_token"] for r in tuned], [100 * r["accuracy"] for r in tuned], "*", ms=12,
                color="tab:red", label="dead zone k, fine-tuned")
        for r in tuned:
            ax.annotate(f"k={r['dead_zone']}", (r["spikes_per_token"], 100 * r["accuracy"]), textcoords="offset points",
                        xytext=(6, -4), fontsize=8, color="tab:red")
    ax.set_xlabel("spikes per token")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs sparsity (BBC News, MiniLM-L6 TTFS student)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)

    ax = axes[1]  # share of silent neurons per kind of activation, the three codings and the tuned dead zones
    shown = [r for r in rows if r["model"] in SHORT] + tuned
    kinds = list(by[SIGNED]["silent_share_by_activation"])
    width = 0.8 / len(shown)
    for j, r in enumerate(shown):
        label = SHORT.get(r["model"], r["model"].replace("M-TTFS, dead zone", "M-TTFS, k =").replace(", fine-tuned", " FT"))
        ax.bar([i + (j - (len(shown) - 1) / 2) * width for i in range(len(kinds) + 1)],
               [100 * r["silent_share_by_activation"][k] for k in kinds] + [100 * r["silent_share"]], width,
               label=f"{label} ({100 * r['silent_share']:.1f}% overall)")
    ax.axhline(100 * SEED["silent_share_dead_zone_3"], color="tab:red", ls=":", lw=1)
    ax.annotate(f"seed: {100 * SEED['silent_share_dead_zone_3']:.1f}% (k = 3)", (-0.4, 100 * SEED["silent_share_dead_zone_3"]),
                textcoords="offset points", xytext=(0, 3), fontsize=7, color="tab:red")
    ax.set_xticks(range(len(kinds) + 1))
    ax.set_xticklabels(kinds + ["all"], fontsize=8)
    ax.set_ylabel("silent neurons (%)")
    ax.set_ylim(0, 105)
    ax.set_title("share of silent neurons by activation (probs and ff_mid unsigned, the others signed)", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    ax.grid(alpha=0.3, axis="y")

    ax = axes[2]
    names = [SHORT.get(r["model"], r["model"].replace("M-TTFS, dead zone", "k =").replace(", fine-tuned", " FT")
                       .replace(" (probabilities too)", " all")) for r in rows]
    x = list(range(len(rows)))
    series = [("digital, horowitz45 (weights read per event: SRAM; FFN: DRAM)", "energy_horowitz45", "tab:orange"),
              ("crossbars, membranes in SRAM", "energy_crossbar_sram_membranes", "tab:blue"),
              ("crossbars, analog integration (MSU)", "energy_crossbar", "tab:purple")]
    width = 0.27
    for j, (label, key, color) in enumerate(series):
        vals = [r[key]["total_uj"] if key in r else float("nan") for r in rows]
        ax.bar([i + (j - 1) * width for i in x], vals, width, color=color, label=label)
    for i, r in enumerate(rows):
        en = r["energy_horowitz45"]
        ax.annotate(f"{100 * en['data_movement_share']:.1f}", (i - width, en["total_uj"]), ha="center",
                    va="bottom", fontsize=6)
    # where the seed's 2.31x (M-TTFS over its TTFS baseline) would put a variant, on each hardware
    seed_row = by[SEED_TTFS]
    for key, color, hw in (("energy_horowitz45", "tab:orange", "digital"), ("energy_crossbar", "tab:purple", "crossbars")):
        ax.axhline(seed_row[key]["total_uj"] / SEED["energy_efficiency_x"], color=color, ls="--", lw=1,
                   label=f"seed TTFS baseline / {SEED['energy_efficiency_x']} (the seed's ratio), {hw}")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("energy per inference (uJ, log scale)")
    ax.set_title(f"energy per inference (over bars: data movement share, %, digital; seed: "
                 f"~{100 * SEED['data_movement_share']:.0f}%)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
