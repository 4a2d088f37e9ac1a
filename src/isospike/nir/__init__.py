"""Exchange with the Neuromorphic Intermediate Representation (NIR, the ``nir`` package).

    isospike.nir.export(snn, "model.nir")     # a NIR graph in HDF5
    snn2 = isospike.nir.load("model.nir")     # isospike's own files back, or graphs other tools export

:mod:`.exchange` walks isospike's networks to NIR and back; what each operation becomes is a
table entry, :mod:`.exporters` (module type or function -> NIR node) and :mod:`.builders` (NIR node
type -> module); :mod:`.populations` holds the neuron populations for the NIR nodes other libraries
write (LIF, CubaLIF, LI, recurrent LIF)."""

from isospike.nir.exchange import export, load

__all__ = ["export", "load"]
