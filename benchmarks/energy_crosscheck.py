"""Cross-check of isospike's counts and energies against SpikingJelly 2.0's op counters.

    python benchmarks/energy_crosscheck.py          # needs the bench extras (make bench-setup)

A digits CNN with quantized activations clipped at 1 (so converted spikes are 0/1, which every
counter recognises as spikes) is converted by isospike (rate, T = 4). On that same network:
  * isospike's per-inference counts (effective MACs / ACs, dense) and energy in "ops" mode
    (E_MAC x MACs + E_AC x ACs, Horowitz 45 nm: 4.6 / 0.9 pJ) and "full" mode;
  * SpikingJelly's estimate_simple_energy (dispatch-level MAC/AC counters + parameter traffic at
    24.96 pJ/byte) run on the very same module.
SpikingJelly's Lemaire et al. (2022) analytical model only understands SpikingJelly neurons, so
it runs on SpikingJelly's own conversion of the same ANN (RateCodingRecipe), next to isospike's
full model on isospike's conversion. Writes benchmarks/results/energy_crosscheck.json.
"""

from __future__ import annotations

import copy

import torch
from _common import print_table, write_results
from torch.utils.data import DataLoader, TensorDataset

import isospike as isp
import isospike.energy as E
from isospike.data import load_digits
from isospike.models import SmallCNN
from isospike.train import accuracy, fit_classifier, quantize_relus

T = 4


def main() -> None:
    from spikingjelly.activation_based import ann2snn
    from spikingjelly.activation_based.op_counter import LemaireEnergyConfig, estimate_lemaire_energy, estimate_simple_energy

    data = load_digits()
    torch.manual_seed(0)
    ann = quantize_relus(SmallCNN(input_size=8), levels=T, init_lambda=1.0, noise="none")
    for m in ann.modules():
        if hasattr(m, "lam"):
            m.lam.requires_grad_(False)  # clip at 1: spikes of value 1
    fit_classifier(ann, data.train, epochs=15, progress=False)
    snn = isp.convert(ann, "rate", timesteps=T)
    x = data.test.x[:64]
    n = len(x)
    act = E.collect(snn, x).totals()
    ops = E.estimate(snn, x, hardware="horowitz45", mode="ops")
    full = E.estimate(snn, x, hardware="horowitz45")
    sj = estimate_simple_energy(snn, x)
    rows = [
        ["MACs (effective: nonzero inputs)", f"{act.macs:.0f}", "-", "isospike counts skip zero inputs (NeuroBench)"],
        ["MACs (dense, in-bounds synapses)", f"{sum(a.dense_ops for a in E.collect(snn, x).layers if a.kind == 'mac'):.0f}",
         f"{sj.counts['mac'] / n:.0f}", "SpikingJelly counts every multiply of non-spike ops (incl. padding)"],
        ["ACs (spike-driven synaptic ops)", f"{act.acs:.0f}", f"{sj.counts['ac'] / n:.0f}",
         "SpikingJelly also counts accumulations outside synapses (e.g. pooling sums, BN on spikes)"],
        ["energy: E_MAC*MACs + E_AC*ACs (nJ)", f"{1e9 * ops.total_j:.1f}",
         f"{1e-3 * (sj.energy_mac_pj + sj.energy_ac_pj) / n:.1f}", "same constants, different counts"],
        ["energy: memory traffic (nJ)", f"{1e9 * full.by_category['data_movement']:.1f}", f"{1e-3 * sj.energy_memory_pj / n:.1f}",
         "isospike: weights per op + membranes + spike buffers by SRAM size; SJ: parameters at 24.96 pJ/B"],
        ["energy: total (nJ)", f"{1e9 * full.total_j:.1f}", f"{1e-3 * sj.energy_total_pj / n:.1f}", ""],
    ]
    print(f"same isospike SNN (digits CNN, T = {T}, accuracy {100 * accuracy(snn, data.test):.2f}%), per inference")
    print_table(["quantity", "isospike", "SpikingJelly simple", "why they differ"], rows)

    # Lemaire: it only understands SpikingJelly neurons, so it runs on SpikingJelly's conversion of a
    # ReLU version of the network; isospike's full model runs on isospike's conversion of the same ANN
    torch.manual_seed(0)
    relu_ann = SmallCNN(input_size=8)
    fit_classifier(relu_ann, data.train, epochs=15, progress=False)
    loader = DataLoader(TensorDataset(data.train.x[:256], torch.zeros(256, dtype=torch.long)), batch_size=128)
    sj_snn = ann2snn.FXConverter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, mode="max"), device="cpu").convert(
        copy.deepcopy(relu_ann))
    lemaire = estimate_lemaire_energy(sj_snn, x, config=LemaireEnergyConfig(strict=False))  # AvgPool: omitted, warned
    lem = {"total_nj": 1e-3 * lemaire.total_pj / n, "breakdown_nj": {k: 1e-3 * v / n for k, v in lemaire.breakdown_pj.items()},
           "counts_per_inference": {k: v / n for k, v in lemaire.counts.items()}, "warnings": lemaire.warnings}
    ours_relu = E.estimate(isp.convert(relu_ann, "rate", timesteps=T, calibration=data.train.x[:256], percentile=100.0), x)
    print(f"\nLemaire et al. 2022 (SpikingJelly, its conversion of a ReLU CNN): {lem['total_nj']:.1f} nJ per step, "
          f"{T * lem['total_nj']:.1f} nJ for T = {T}; per step: "
          f"{', '.join(f'{k} {v:.1f}' for k, v in lem['breakdown_nj'].items())}")
    print(f"isospike full model, its conversion of the same ReLU CNN, T = {T}: {1e9 * ours_relu.total_j:.1f} nJ "
          f"(compute {1e9 * ours_relu.by_category['compute']:.1f}, data movement "
          f"{1e9 * ours_relu.by_category['data_movement']:.1f})")
    print("Lemaire charges every layer input/output and every parameter as a 32-bit access to a buffer sized for the"
          " layer at each step (dense traffic), adds addressing and integer-add (0.1 pJ) costs; isospike charges only"
          " events: a weight read per synaptic event, a membrane read + write per neuron update, spike buffers, fp32"
          " adds (0.9 pJ). The dense in/out traffic is most of the gap.")
    path = write_results("energy_crosscheck", {
        "timesteps": T, "samples": n, "isospike": {"counts": act.__dict__, "ops": ops.as_dict(), "full": full.as_dict()},
        "spikingjelly_simple": {"counts": {k: v / n for k, v in sj.counts.items()},
                                "energy_pj": {k: v / n for k, v in sj.breakdown_pj.items()}},
        "spikingjelly_lemaire_on_sj_conversion": lem,
        "isospike_full_on_isospike_conversion": ours_relu.as_dict(),
        "rows": rows,
    })
    print(f"written: {path}")


if __name__ == "__main__":
    main()
