"""Structured pruning on torch-pruning's dependency graph: CNN channels, BERT heads and FFN neurons, with
budgets (MACs, params, measured latency) reached in aligned, iterative steps (`structured.py`).

`edgetl.prune(model, train, eval_data, config, out)` is the public function (`api.py`, config in `config.py`)."""

from edgetl._technique import make_callable

make_callable(__name__, "edgetl.prune.api:prune")
