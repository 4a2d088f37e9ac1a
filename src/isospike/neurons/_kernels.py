"""Compiled multi-step integrate-and-fire kernel (numba).

One pass over the input: each worker owns a block of neurons and keeps their membranes in
cache for all T steps, so the input is read once and one byte per spike is written. The
arithmetic is the same float32 sequence as :func:`isospike.neurons.integrate_fire.if_step`
(no fast-math, no fused multiply-add), so both paths give identical spikes and membranes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_BLOCK = 4096  # neurons per work item: membrane + threshold blocks stay in L1/L2


@njit(parallel=True, boundscheck=False, fastmath=False, cache=True)
def integrate_fire_multistep(x, constant_input, timesteps, v, threshold, leak, reset_to_zero, out):  # pragma: no cover - compiled
    """Run ``timesteps`` IF/LIF steps in place.

    Args:
        x: float32 [T, M] input currents, or [1, M] when ``constant_input`` (same every step).
        constant_input: bool, read row 0 at every step.
        timesteps: int T.
        v: float32 [M] membrane, updated in place (initial value in, final value out).
        threshold: float32 [M] firing thresholds.
        leak: float32 scalar beta (1.0 = IF).
        reset_to_zero: bool; False = reset by subtraction.
        out: uint8 [T, M] spikes, written.
    """
    m = v.shape[0]
    nblocks = (m + _BLOCK - 1) // _BLOCK
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for b in prange(nblocks):
        lo = b * _BLOCK
        hi = min(m, lo + _BLOCK)
        vb = v[lo:hi]
        thb = threshold[lo:hi]
        n = hi - lo
        for t in range(timesteps):
            row = 0 if constant_input else t
            xr = x[row, lo:hi]
            orow = out[t, lo:hi]
            for i in range(n):
                vi = leak * vb[i] + xr[i]
                s = one if vi >= thb[i] else zero
                orow[i] = np.uint8(s)
                if reset_to_zero:
                    vb[i] = vi * (one - s)
                else:
                    vb[i] = vi - thb[i] * s
