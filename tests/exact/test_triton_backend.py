"""The fused Triton gate kernel (backend="triton", chosen by "bitsliced" on CUDA tensors).

Without a GPU the kernel runs in Triton's CPU interpreter (TRITON_INTERPRET=1, in a subprocess so
the flag cannot leak into other tests): it must give the numba backend's bits and counts exactly,
for every gate kind, partial lane blocks, several program instances and several launches. The
CUDA test runs the compiled kernel where a GPU exists.
"""

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from isospike.exact import ops

triton = pytest.importorskip("triton", reason="Triton is not installed (it ships with CUDA builds of torch)")

INTERPRETED_CHECK = textwrap.dedent("""
    import math
    import sys
    import numpy as np, torch
    import triton
    import triton.language as tl

    @triton.jit
    def probe(x, n):
        for i in range(n):
            tl.store(x + i, i)

    try:  # Triton 3.6's interpreter cannot loop to a runtime bound under numpy 2 (int() of a 1-element array)
        probe[(1,)](torch.zeros(2, dtype=torch.int64), 2)
    except Exception as e:
        print("INTERPRETER UNUSABLE", triton.__version__, repr(e)[:200])
        sys.exit(0)
    from isospike.exact import counting, ops
    from isospike.exact.backends import bitsliced, triton_bitsliced
    from isospike.exact.gates import KINDS
    from isospike.exact.netlist import Circuit

    # every gate kind, wired at random over three 8-bit inputs and earlier gates
    rng = np.random.default_rng(0)
    c = Circuit("all_kinds")
    wires = c.input("a", 8) + c.input("b", 8) + c.input("c", 8)
    outs = []
    for rep in range(3):
        for kind in KINDS:
            ins = tuple(int(w) for w in rng.choice(wires, size=kind.arity, replace=False))
            w = c._emit(kind.code, ins)
            wires.append(w)
            outs.append(w)
    c.output("y", outs[-40:])
    c.output("z", outs[:8])
    netlist = c.build()
    n = 700  # 11 words: three programs of block 4, the last one partial
    inputs = {k: rng.integers(0, 256, n).astype(np.uint64) for k in "abc"}
    ref, ref_counts = bitsliced.evaluate(netlist, inputs, count=True)
    triton_bitsliced.SCRATCH_BUDGET = 4 * 4 * 200  # forces several launches
    tin = {k: torch.from_numpy(v.view(np.int64)) for k, v in inputs.items()}
    got, got_counts = triton_bitsliced.evaluate(netlist, tin, count=True, block=4, num_warps=1)
    assert got_counts == ref_counts, (got_counts, ref_counts)
    for name in ref:
        assert np.array_equal(got[name].numpy().view(np.uint64), ref[name]), name
    plain, _ = triton_bitsliced.evaluate(netlist, tin, block=8)  # counting off, other block
    assert all(torch.equal(plain[name], got[name]) for name in ref)
    print("all kinds ok", got_counts)

    triton_bitsliced.SCRATCH_BUDGET = 1 << 25
    g = torch.Generator().manual_seed(0)
    a = torch.randn(150, generator=g)
    b = torch.randn(150, generator=g) * 1e3
    specials = torch.tensor([math.nan, math.inf, -math.inf, -0.0, 0.0, 1e-40, 3e38, -1e-45])
    a[:8], b[3:11] = specials, specials
    with counting() as numba_counts:
        want = ops.add(a, b)
    with counting() as triton_counts:
        y = ops.add(a, b, backend="triton")
    assert torch.equal(y.view(torch.int32), want.view(torch.int32))
    assert (triton_counts.spikes, triton_counts.synaptic_events) == (numba_counts.spikes, numba_counts.synaptic_events)
    assert ops.add(a[:0], b[:0], backend="triton").shape == (0,)
    print("add ok")
""")


def test_the_fused_kernel_in_the_interpreter_equals_the_numba_backend():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", INTERPRETED_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if "INTERPRETER UNUSABLE" in done.stdout:
        pytest.skip(f"this Triton's CPU interpreter cannot run the kernel: {done.stdout.strip()}")
    assert "all kinds ok" in done.stdout and "add ok" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") != "0",
                    reason="Triton can run here")
def test_asking_for_triton_where_it_cannot_run_names_the_fix():
    a = torch.ones(3)
    with pytest.raises(ValueError, match="backend='triton' needs Triton and a CUDA tensor.*'bitsliced'"):
        ops.add(a, a, backend="triton")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("op", ["add", "mul", "div", "sqrt", "fma", "minimum"])
def test_cuda_default_backend_is_the_fused_kernel_and_gives_the_cpu_bits(op):
    from isospike.exact import counting

    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(5000, generator=g) * 10 for _ in range(3)]
    xs[0][:4] = torch.tensor([math.nan, math.inf, -0.0, 1e-40])
    if op in ("sqrt",):
        xs = [xs[0].abs()]
    fn = getattr(ops, op)
    arity = {"add": 2, "mul": 2, "div": 2, "sqrt": 1, "fma": 3, "minimum": 2}[op]
    args = xs[:arity]
    with counting() as cpu_counts:
        want = fn(*args)
    with counting() as gpu_counts:
        y = fn(*(t.cuda() for t in args))
    assert y.is_cuda
    assert torch.equal(y.cpu().view(torch.int32), want.view(torch.int32))
    assert (gpu_counts.spikes, gpu_counts.synaptic_events) == (cpu_counts.spikes, cpu_counts.synaptic_events)
