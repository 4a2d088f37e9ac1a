"""IEEE-754 operations as threshold-gate circuits (round to nearest even, subnormals, signed
zeros, infinities, NaN -> canonical quiet NaN)."""
