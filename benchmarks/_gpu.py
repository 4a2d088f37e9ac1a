"""Measurements shared by the benchmarks' device columns (benchmarks/exact_speed.py,
benchmarks/neuron_sim.py) and the prepared device run (benchmarks/gpu_suite.py).

Every function takes the device to measure and returns plain dicts; the callers print and save.
Times are best-of-N wall times with the device synchronized around each call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

FLOAT_OPS = {"add": 2, "mul": 2, "fma": 3, "div": 2, "sqrt": 1}


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Best wall time of ``fn()`` in seconds (device synchronized before and after)."""
    for _ in range(warmup):
        fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def bitwise_and_lane_ops_per_s(device: torch.device, words: int) -> float:
    """The device's own bitwise AND: ``torch.bitwise_and(x, y, out=z)`` over ``words`` int64
    words, as lane operations per second (64 per word)."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(-2**62, 2**62, (words,), device=device, generator=g)
    y = torch.randint(-2**62, 2**62, (words,), device=device, generator=g)
    z = torch.empty_like(x)
    reps = max(5, (1 << 26) // words)
    t = best_time(lambda: torch.bitwise_and(x, y, out=z), device, repeats=reps)
    return 64 * words / t


def _operands(op: str, n: int, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    xs = [(torch.randn(n, generator=g) * 100).to(device) for _ in range(FLOAT_OPS[op])]
    return [xs[0].abs()] if op == "sqrt" else xs


def packed_words(op: str, log2n: int, device: torch.device) -> tuple[object, torch.Tensor, int]:
    """The float32 netlist of ``op`` and random operands already packed into spike-line words
    (int64 [input lines, 2^log2n / 64] on ``device``)."""
    from isospike.exact.backends.torch_bitsliced import pack
    from isospike.exact.circuits_registry import float_op_netlist

    netlist = float_op_netlist(op, "float32")
    n = 1 << log2n
    xs = _operands(op, n, device)
    words = torch.cat([pack(x.view(torch.int32).to(torch.int64) & 0xFFFFFFFF, 32) for x in xs])
    return netlist, words, n


def triton_kernel_rate(op: str, log2n: int, device: torch.device, block: int, num_warps: int,
                       repeats: int = 5) -> dict:
    """The fused Triton kernel alone on packed words: seconds and lane-gates per second."""
    from isospike.exact.backends import triton_bitsliced

    netlist, words, n = packed_words(op, log2n, device)
    t = best_time(lambda: triton_bitsliced.evaluate_words(netlist, words, n, block=block, num_warps=num_warps),
                  device, repeats=repeats)
    return {"op": op, "values": n, "block": block, "num_warps": num_warps, "gates": netlist.n_gates,
            "seconds": t, "lane_gates_per_s": netlist.n_gates * n / t}


def torch_levels_rate(op: str, log2n: int, device: torch.device, repeats: int = 3) -> dict:
    """The plain-torch level-by-level engine on the same packed words (one launch per gate kind
    and level), for comparison with the fused kernel."""
    from isospike.exact.backends import torch_bitsliced

    netlist, words, n = packed_words(op, log2n, device)
    names = list(netlist.input_widths)
    from isospike.exact.backends.torch_bitsliced import unpack

    inputs = {name: unpack(words[32 * i:32 * (i + 1)], n) for i, name in enumerate(names)}
    t = best_time(lambda: torch_bitsliced.evaluate(netlist, inputs), device, repeats=repeats)
    return {"op": op, "values": n, "seconds": t, "lane_gates_per_s": netlist.n_gates * n / t,
            "note": "end to end (pack, levels, unpack)"}


def end_to_end_rate(op: str, log2n: int, device: torch.device, repeats: int = 3, **kw) -> dict:
    """``isospike.exact.<op>`` on float32 tensors of ``device`` (spatial bit encoding in, every gate,
    decoding out; the backend chosen by the device unless given in ``kw``)."""
    from isospike.exact import cost, ops

    n = 1 << log2n
    xs = _operands(op, n, device)
    fn = getattr(ops, op)
    t = best_time(lambda: fn(*xs, **kw), device, repeats=repeats)
    return {"op": op, "values": n, "seconds": t, "ops_per_s": n / t, "lane_gates_per_s": cost(op).neurons * n / t}


def open_neuromorphic_lif(device: torch.device, width: int, T: int = 500, batch: int = 16, repeats: int = 3) -> dict:
    """The Open Neuromorphic setup: linear (width x width) + LIF (beta 0.9, reset to zero),
    batch 16, T steps. isospike's population forward (no surrogate gradient: converted networks are
    inference), snnTorch's Leaky forward + backward when installed."""
    from isospike.neurons import IFNeuron

    torch.manual_seed(0)
    x = torch.rand(T, batch, width, device=device)
    lin = torch.nn.Linear(width, width).to(device)
    lif = IFNeuron(threshold=1.0, leak=0.9, reset="zero", step_mode="multi").to(device)

    def isospike_forward() -> None:
        with torch.no_grad():
            lif.reset()
            lif.multi_step(lin(x))

    row: dict = {"neurons": width, "batch": batch, "timesteps": T,
                 "isospike_forward_ms": 1e3 * best_time(isospike_forward, device, repeats=repeats)}
    try:
        import snntorch as snn
    except ImportError:
        row["snntorch_forward_ms"] = row["snntorch_forward_backward_ms"] = None
        return row
    leaky = snn.Leaky(beta=0.9, reset_mechanism="zero").to(device)

    def snntorch_run(backward: bool) -> None:
        mem = leaky.init_leaky()
        out = []
        cur = lin(x)
        for t in range(T):
            spk, mem = leaky(cur[t], mem)
            out.append(spk)
        if backward:
            torch.stack(out).sum().backward()

    with torch.no_grad():
        row["snntorch_forward_ms"] = 1e3 * best_time(lambda: snntorch_run(False), device, repeats=repeats)
    row["snntorch_forward_backward_ms"] = 1e3 * best_time(lambda: snntorch_run(True), device, repeats=repeats)
    return row


def device_column(measure: Callable[[torch.device], list[dict]], key: str) -> dict:
    """The GPU column of a CPU benchmark: measured by ``measure(cuda)`` when a CUDA device is
    present; otherwise empty, pointing at the last real run recorded by benchmarks/gpu_suite.py
    (never an estimate)."""
    import json
    from pathlib import Path

    if torch.cuda.is_available():
        device = torch.device("cuda")
        return {"device": device_name(device), "measured_here": True, "rows": measure(device)}
    recorded = Path(__file__).resolve().parent / "results" / "gpu_suite.json"
    note = "no CUDA device in this run: GPU column empty"
    if recorded.exists():
        run = json.loads(recorded.read_text())
        note += (f"; last real run: {run.get('device')} on {run.get('date')}, {key} in {recorded.name} "
                 "(python benchmarks/gpu_suite.py)")
    print(note)
    return {"device": None, "measured_here": False, "rows": [], "note": note}
