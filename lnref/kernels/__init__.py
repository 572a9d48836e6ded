"""The compiled layer: one numba function per formula of SPEC.md and the loops that call them.

- :mod:`lnref.kernels.equations`: the formulas of the network and of the methods' losses (SPEC section 8);
- :mod:`lnref.kernels.weights`: the weight engine's loops (inner products, outputs, gradients, GD steps);
- :mod:`lnref.kernels.coefficients`: the coefficient engine, Gram sampling and virtual test sets;
- :mod:`lnref.kernels.seeding`, :mod:`lnref.kernels.normals`: PCG64 words and NumPy's normals in numba;
- :mod:`lnref.kernels.cache`: the ``kernel`` decorator and the on-disk kernel cache.

Kernels take preallocated outputs, draw no random numbers and read no mutable module state; the layers above
(:mod:`lnref.data`, :mod:`lnref.model`, :mod:`lnref.engines`) validate inputs and call them.  This layer
imports nothing else of lnref.
"""
