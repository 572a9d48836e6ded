"""The compiled layer: one numba function per formula of SPEC.md and the loops that call them.

- :mod:`lnref.kernels.equations`: the formulas of the network (SPEC section 8);
- :mod:`lnref.kernels.losses`: the logistic loss and the training methods' losses (SPEC sections 3 and 9);
- :mod:`lnref.kernels.weights`: the weight engine's loops (inner products, outputs, gradients, GD steps);
- :mod:`lnref.kernels.contractions`: the weight engine's blocked contractions over d (inner products, gradient);
- :mod:`lnref.kernels.coefficients`: the coefficient engine (outputs, GD steps, test inner products, W);
- :mod:`lnref.kernels.gram`: Gram sampling, the engine's scaled statistics, virtual and fresh test sets;
- :mod:`lnref.kernels.sweep_run`: a sweep run after its Gram draws in one call (the engine's kernels, its order);
- :mod:`lnref.kernels.metrics`: a logged step's counts and extrema;
- :mod:`lnref.kernels.lanes`, :mod:`lnref.kernels.lane_blocks`: serial sums held in vector registers (LLVM IR);
- :mod:`lnref.kernels.seeding`, :mod:`lnref.kernels.normals`: PCG64 words and NumPy's normals in numba;
- :mod:`lnref.kernels.placement`: each of numba's threads reading and setting its own CPU affinity (no formula);
- :mod:`lnref.kernels.cache`: the ``kernel`` decorator and the on-disk kernel cache.

Kernels take preallocated outputs, draw no random numbers and read no mutable module state; the layers above
(:mod:`lnref.data`, :mod:`lnref.model`, :mod:`lnref.engines`) validate inputs and call them.  This layer
imports nothing else of lnref.
"""
