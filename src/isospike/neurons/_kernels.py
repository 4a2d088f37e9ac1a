"""Compiled multi-step integrate-and-fire kernel (numba).

One pass over the input: each worker owns a block of neurons and keeps their membranes in
cache for all T steps, so the input is read once and each output element written once; spike
counts per step are reduced in the same pass. The arithmetic is the same float32 sequence as
:func:`isospike.neurons.integrate_fire.if_step` (no fast-math, no fused multiply-add), so both
paths give identical spikes and membranes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 4096  # neurons per work item: membrane, threshold and value blocks stay in L1/L2


def n_blocks(m: int) -> int:
    return (m + BLOCK - 1) // BLOCK


@njit(parallel=True, boundscheck=False, fastmath=False, cache=True)
def integrate_fire_multistep(x, constant_input, timesteps, v, threshold, value, leak, reset_to_zero, binary, out,
                             counts):  # pragma: no cover - compiled
    """Run ``timesteps`` IF/LIF steps in place.

    Args:
        x: float32 [T, M] input currents, or [1, M] when ``constant_input`` (same every step).
        constant_input: bool, read row 0 at every step.
        timesteps: int T.
        v: float32 [M] membrane, updated in place (initial value in, final value out).
        threshold: float32 [M] firing thresholds.
        value: float32 [M] value written for a spike (0 is written for no spike).
        leak: float32 scalar beta (1.0 = IF).
        reset_to_zero: bool; False = reset by subtraction.
        binary: bool; True writes 1 per spike into a uint8 ``out``, False writes ``value``
            into a float32 ``out``.
        out: [T, M] output, written.
        counts: int64 [n_blocks(M), T] spikes per block and step, written.
    """
    m = v.shape[0]
    nblocks = (m + BLOCK - 1) // BLOCK
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for b in prange(nblocks):
        lo = b * BLOCK
        hi = min(m, lo + BLOCK)
        vb = v[lo:hi]
        thb = threshold[lo:hi]
        valb = value[lo:hi]
        n = hi - lo
        for t in range(timesteps):
            row = 0 if constant_input else t
            xr = x[row, lo:hi]
            orow = out[t, lo:hi]
            for i in range(n):
                vi = leak * vb[i] + xr[i]
                s = one if vi >= thb[i] else zero
                if binary:
                    orow[i] = np.uint8(s)
                else:
                    orow[i] = s * valb[i]
                if reset_to_zero:
                    vb[i] = vi * (one - s)
                else:
                    vb[i] = vi - thb[i] * s
            # counted in a second pass over the block (in L1): keeps the loop above vectorized
            c = 0
            for i in range(n):
                c += np.int64(orow[i] != 0)
            counts[b, t] = c


@njit(parallel=True, boundscheck=False, fastmath=False, cache=True)
def nonzero_per_row(values, counts):  # pragma: no cover - compiled
    """counts[t] = number of nonzero entries of row t of ``values`` ([T, M], any numeric dtype):
    one parallel pass over blocks of columns (each block's partial counts, then their sum)."""
    steps, m = values.shape
    nblocks = (m + BLOCK - 1) // BLOCK
    partial = np.zeros((nblocks, steps), dtype=np.int64)
    for b in prange(nblocks):
        lo = b * BLOCK
        hi = min(m, lo + BLOCK)
        for t in range(steps):
            c = 0
            for i in range(lo, hi):
                c += np.int64(values[t, i] != 0)
            partial[b, t] = c
    for t in range(steps):
        s = 0
        for b in range(nblocks):
            s += partial[b, t]
        counts[t] = s
