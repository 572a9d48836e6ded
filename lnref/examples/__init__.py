"""Examples of other implementations checked against lnref: ``python -m lnref.examples.torch_model`` (PyTorch,
float64 and float32) and ``python -m lnref.examples.jax_model`` (JAX, float64; needs ``pip install jax``)."""
