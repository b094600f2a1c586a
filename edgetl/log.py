"""Logging set-up. Only the CLI calls `setup_logging`; library modules just use getLogger(__name__)."""

from __future__ import annotations

import logging


def setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else logging.INFO
    handler = RichHandler(show_path=False, show_time=False, markup=False, rich_tracebacks=False)
    root = logging.getLogger("edgetl")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Libraries we call are chatty at INFO; keep them to warnings unless asked.
    for noisy in ("transformers", "torch", "onnxruntime", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # torchao (imported by transformers and by QAT) warns per missing CUDA kernel library on CPU-only installs,
    # and torch warns about torchao's enum registrations: irrelevant to PT2E QAT, and they read like failures
    for noisy in ("torchao", "torch.utils._pytree", "torch.onnx"):  # (+ "torchvision is not installed. Skipping")
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)
