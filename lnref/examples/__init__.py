"""Examples of other implementations checked against lnref (``python -m lnref.examples.torch_model``)."""
