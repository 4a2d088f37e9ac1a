"""Backends that evaluate gate netlists: bit-sliced (packed words, fast, exact) and neuron
(membrane-level simulation with leak and noise)."""
