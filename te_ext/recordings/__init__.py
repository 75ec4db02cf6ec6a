"""Recordings: spike times in, a delayed-TE connectivity matrix out (the ``te-matrix`` app).

An application on top of the op library, which never imports it:

* :mod:`.cli`: the ``te-matrix`` command;
* :mod:`.io`: reading ``.npy`` rasters and ``.npz`` spike times, binning exact at the edges,
  and writing the output safely;
* :mod:`.scan`: the delay scan in blocks, peaks and their p-values, across ranks;
* :mod:`.example`: a planted spiking network and the scores of a recovered matrix.
"""
