"""A domain alignment loss as an extra term of a training loop: features of the source batch (tapped at one
layer during the loop's own forward pass) against features of a target batch (one more forward pass)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from edgetl.adapt.losses import DomainClassifier, coral_loss, dann_coefficient, dann_loss, mmd_loss

log = logging.getLogger(__name__)


def find_layer(module: nn.Module, name: str) -> str:
    """The full name of the module called `name` or ending in `.name` (a peft wrapper prefixes names)."""
    names = [n for n, _ in module.named_modules() if n]
    if name in names:
        return name
    hits = [n for n in names if n.endswith("." + name)]
    if not hits:
        raise KeyError(name)
    return min(hits, key=len)


def pooled(x: Any) -> torch.Tensor:
    """A layer's output as (N, D) features: the first element of a tuple, spatial maps (N, C, H, W) and token
    sequences (N, T, H) averaged over positions."""
    if isinstance(x, (tuple, list)):
        x = x[0]
    if hasattr(x, "last_hidden_state"):
        x = x.last_hidden_state
    if x.dim() == 4:
        return x.mean((2, 3))
    if x.dim() == 3:
        return x.mean(1)
    return x.flatten(1)


class FeatureTap:
    """Keeps the features of a layer's latest forward pass: its output, or (inputs=True) its input."""

    def __init__(self, layer: nn.Module, inputs: bool = False):
        self.value: torch.Tensor | None = None
        self._inputs = inputs
        self._handle = layer.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.value = pooled(args[0] if self._inputs else output)

    def take(self) -> torch.Tensor:
        value, self.value = self.value, None
        if value is None:
            raise RuntimeError("the tapped layer did not run in the last forward pass")
        return value

    def remove(self) -> None:
        self._handle.remove()


class Batches:
    """Re-iterable model-input batches of raw inputs (images or texts): `encode` turns a slice of raw inputs
    into a dict of arrays or tensors; the order is reshuffled on each pass."""

    def __init__(self, inputs: Any, batch_size: int, encode: Callable[[Any], dict[str, Any]], seed: int = 0,
                 shuffle: bool = True):
        if len(inputs) == 0:
            raise ValueError("no inputs to make batches of")
        self.inputs, self.batch_size, self.encode = inputs, batch_size, encode
        self.seed, self.shuffle, self._passes = seed, shuffle, 0

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        n = len(self.inputs)
        order = np.random.default_rng(self.seed + self._passes).permutation(n) if self.shuffle else np.arange(n)
        self._passes += 1
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            raw = self.inputs[idx] if isinstance(self.inputs, np.ndarray) else [self.inputs[i] for i in idx]
            yield {k: torch.as_tensor(v) for k, v in self.encode(raw).items()}


def _forever(batches: Iterable[dict[str, torch.Tensor]]) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        empty = True
        for b in batches:
            empty = False
            yield b
        if empty:
            raise ValueError("the target batches are empty")


class DomainAlignment:
    """`weight` x a discrepancy between source and target features at `layer`, as a loss term
    `(inputs, labels, logits) -> tensor` called right after the loop's forward pass on a source batch.

    The call takes the source features from that pass and runs the model once more on the next target batch
    (`target_batches` is cycled). `coral` and `mmd` compare the two sets of features; `dann` trains a domain
    classifier on them through a gradient reversal whose coefficient follows 2/(1+exp(-10p))-1 over
    `total_calls` calls. `attach_model(module)` hooks the module being trained (call it again after a wrapper
    such as peft replaces it); `parameters()` are the domain classifier's, to train beside the model's."""

    def __init__(self, method: str, module: nn.Module, target_batches: Iterable[dict[str, torch.Tensor]], *,
                 weight: float, layer: str | None = None, head: str | None = None, total_calls: int = 1,
                 hidden: int = 256):
        if method not in ("coral", "mmd", "dann"):
            raise ValueError(f"unknown alignment method {method!r}; expected coral, mmd or dann")
        if (layer is None) == (head is None):
            raise ValueError("give exactly one of layer (its output is aligned) or head (its input is aligned)")
        self.method, self.weight, self.layer, self.head = method, weight, layer, head
        self.total_calls = max(1, total_calls)
        self._batches = target_batches
        self._target = _forever(target_batches)
        self._device = torch.device("cpu")
        self._tap: FeatureTap | None = None
        self._module: nn.Module | None = None
        self.calls = 0
        self._sums = {"loss": 0.0, "domain_accuracy": 0.0}
        self.classifier: DomainClassifier | None = None
        if method == "dann":
            self.classifier = DomainClassifier(self._feature_size(module), hidden)
        self.attach_model(module)

    def _feature_size(self, module: nn.Module) -> int:
        tap = self._new_tap(module)
        batch = next(iter(self._batches))
        was = module.training
        module.eval()
        try:
            with torch.no_grad():
                module(**{k: v[:2] for k, v in batch.items()})
            return int(tap.take().shape[1])
        finally:
            tap.remove()
            module.train(was)

    def _new_tap(self, module: nn.Module) -> FeatureTap:
        name = self.head if self.head is not None else self.layer
        if name is None:
            raise ValueError("no layer to tap")
        return FeatureTap(module.get_submodule(find_layer(module, name)), inputs=self.head is not None)

    def attach_model(self, module: nn.Module) -> None:
        if self._tap is not None:
            self._tap.remove()
        self._module, self._tap = module, self._new_tap(module)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.classifier.parameters()) if self.classifier is not None else []

    def to(self, device: torch.device) -> None:
        self._device = torch.device(device)
        if self.classifier is not None:
            self.classifier.to(self._device)

    @property
    def coefficient(self) -> float:
        return dann_coefficient(self.calls / self.total_calls)

    def __call__(self, inputs, labels, logits) -> torch.Tensor:
        if self._tap is None or self._module is None:
            raise RuntimeError("attach_model() the module being trained first")
        source = self._tap.take()
        batch = {k: v.to(self._device) for k, v in next(self._target).items()}
        self._module(**batch)
        target = self._tap.take()
        if self.method == "coral":
            loss = coral_loss(source, target)
        elif self.method == "mmd":
            loss = mmd_loss(source, target)
        elif self.classifier is not None:
            self.classifier.train(self._module.training)
            loss, acc = dann_loss(self.classifier, source, target, self.coefficient)
            self._sums["domain_accuracy"] += acc
        else:
            raise RuntimeError("dann without a domain classifier")
        self.calls += 1
        self._sums["loss"] += float(loss.detach())
        return self.weight * loss

    def stats(self) -> dict[str, Any]:
        n = max(self.calls, 1)
        out: dict[str, Any] = {"alignment_calls": self.calls, "mean_alignment_loss": round(self._sums["loss"] / n, 6)}
        if self.method == "dann":
            out["mean_domain_accuracy"] = round(self._sums["domain_accuracy"] / n, 4)
            out["final_reversal_coefficient"] = round(self.coefficient, 4)
        return out

    def close(self) -> None:
        if self._tap is not None:
            self._tap.remove()
            self._tap = None
