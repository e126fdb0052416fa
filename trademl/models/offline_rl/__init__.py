"""Offline RL sizing: logged transitions of the baseline book, discrete CQL / IQL policies
(d3rlpy, training only), off-policy evaluation (FQE, importance sampling, doubly robust) as
the gate, and an ONNX policy for serving (which never imports d3rlpy)."""
