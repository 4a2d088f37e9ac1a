"""Integer circuits built only from threshold gates: adders (ripple, Kogge-Stone), incrementer,
subtractor, comparators, multiplexers, barrel shifters with sticky bit, leading-zero counter,
Dadda multiplier. Bit vectors are little-endian lists of wires."""
