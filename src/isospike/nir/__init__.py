"""Exchange with the Neuromorphic Intermediate Representation (NIR, the ``nir`` package).

    isospike.nir.export(snn, "model.nir")     # a NIR graph in HDF5
    isospike.nir.export(snn, "model.nir", reader="snntorch")  # the nodes snnTorch runs as this network
    snn2 = isospike.nir.load("model.nir")     # isospike's own files back
    snn3 = isospike.nir.load("lif.nir", convention="snntorch", reset="subtract")  # another tool's, as it runs it

:mod:`.exchange` walks isospike's networks to NIR and back; what each operation becomes is a
table entry, :mod:`.exporters` (module type or function -> NIR node) and :mod:`.builders` (NIR node
type -> module); :mod:`.populations` holds the neuron populations for the NIR nodes other libraries
write (LIF, CubaLIF, LI, recurrent LIF), run with NIR's or each library's own dynamics;
:mod:`.readers` rewrites an export into the nodes each reader (snnTorch, Norse, sinabs, rockpool,
nirtorch) runs as the network."""

from isospike.nir.exchange import export, load

__all__ = ["export", "load"]
