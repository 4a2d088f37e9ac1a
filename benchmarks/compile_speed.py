"""torch.compile on converted networks: compiled against eager, side by side, for every time-coded
coding, with the outputs and spike counts checked equal.

    python benchmarks/compile_speed.py            # ~3 minutes on 2 cores (first compilations included)

A SmallCNN for 28x28 images (random weights, inputs in [0, 1], calibrated on 512 of them), batch
256, inference (no autograd): rate (T = 8), TTFS and M-TTFS (T = 15), sigma-delta (T = 4). For
each: the eager call, the first compiled call (compilation), and the compiled call after warm-up
(median of --repeats). Writes benchmarks/results/compile_speed.json.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import print_table, time_call, write_results

import isospike as isp
from isospike.models import SmallCNN

CODINGS = {"rate": {"timesteps": 8}, "ttfs": {"timesteps": 15}, "mttfs": {"timesteps": 15},
           "sigma_delta": {"timesteps": 4}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ann = SmallCNN(input_size=28).eval()
    g = torch.Generator().manual_seed(1)
    calibration = torch.rand(512, 1, 28, 28, generator=g)
    x = torch.rand(args.batch, 1, 28, 28, generator=g)
    rows, results = [], {}
    for coding, options in CODINGS.items():
        snn = isp.convert(ann, coding=coding, calibration=calibration, **options)
        compiled = torch.compile(snn)
        with torch.no_grad():
            eager_out = snn(x)
            t0 = time.perf_counter()
            compiled_out = compiled(x)
            first = time.perf_counter() - t0
            eager = time_call(lambda: snn(x), repeats=args.repeats)["median_s"]
            fast = time_call(lambda: compiled(x), repeats=args.repeats)["median_s"]
        same_spikes = isp.simulate(compiled, x).spikes == isp.simulate(snn, x).spikes
        max_diff = float((compiled_out - eager_out).abs().max())
        results[coding] = {"timesteps": snn.timesteps, "eager_s": eager, "compiled_s": fast, "first_call_s": first,
                           "speedup": eager / fast, "max_abs_output_diff": max_diff, "same_spike_count": same_spikes}
        rows.append([coding, snn.timesteps, f"{1e3 * eager:.1f}", f"{1e3 * fast:.1f}", f"{eager / fast:.2f}",
                     f"{first:.1f}", f"{max_diff:.1e}", "yes" if same_spikes else "NO"])
        print(f"{coding}: eager {1e3 * eager:.1f} ms, compiled {1e3 * fast:.1f} ms", flush=True)
    print_table(["coding", "T", "eager (ms)", "compiled (ms)", "eager / compiled", "first call (s)",
                 "max |diff|", "same spikes"], rows)
    print(f"written: {write_results('compile_speed', {'batch': args.batch, 'model': 'SmallCNN(28x28)', 'results': results})}")


if __name__ == "__main__":
    main()
