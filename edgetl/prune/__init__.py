"""Structured pruning on torch-pruning's dependency graph: CNN channels, BERT heads and FFN neurons, with
budgets (MACs, params, measured latency) reached in aligned, iterative steps (`structured.py`)."""
