"""Per-layer sensitivity of the fake-quantized model, and sensitivity-guided fallback to float.

Each layer (conv / linear) is scored by switching fake quantization of its inputs (activation + weight) on
alone (`one_at_a_time`) or off alone (`all_but_one`), and measuring either output SQNR against the float
model on a calibration batch (`sqnr`, cheap) or accuracy on eval examples (`accuracy`). The result is a
ranked table, most sensitive first. `fallback` then keeps the most sensitive layers in float, one at a time,
until the fake-quant accuracy drop against the float model fits the budget.

An activation fake-quant shared by several layers (one tensor feeding two convs) is switched off only when
every layer that reads it is off, so the simulation matches the graph the quantizer then builds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from edgetl.quant.calibrate import fake_quants, set_enabled
from edgetl.quant.qat import Layer

log = logging.getLogger(__name__)


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    noise = float(((ref - test) ** 2).sum())
    signal = float((ref**2).sum())
    if noise <= 0:
        return float("inf")
    return 10.0 * float(np.log10(max(signal, 1e-30) / noise))


@torch.no_grad()
def _logits(gm, batches: list[dict[str, torch.Tensor]]) -> np.ndarray:
    return np.concatenate([gm(**b).float().numpy() for b in batches])


def apply_float_layers(gm, layers: list[Layer], float_names: set[str]) -> None:
    """Fake quantization on everywhere except the inputs of `float_names` (see the module note on sharing)."""
    acts, weights = fake_quants(gm)
    set_enabled(list(acts.values()) + list(weights.values()), fake_quant=True)
    readers: dict[str, list[str]] = {}
    for layer in layers:
        if layer.act:
            readers.setdefault(layer.act, []).append(layer.name)
    for layer in layers:
        if layer.name in float_names:
            if layer.weight in weights:
                weights[layer.weight].fake_quant_enabled[0] = 0
            if layer.act in acts and all(r in float_names for r in readers[layer.act]):
                acts[layer.act].fake_quant_enabled[0] = 0


def _only(gm, layer: Layer) -> None:
    acts, weights = fake_quants(gm)
    set_enabled(list(acts.values()) + list(weights.values()), fake_quant=False)
    for name in (layer.act, layer.weight):
        if name in acts:
            acts[name].fake_quant_enabled[0] = 1
        if name in weights:
            weights[name].fake_quant_enabled[0] = 1


def layer_sensitivity(gm, layers: list[Layer], batches: list[dict[str, torch.Tensor]], *, mode: str = "one_at_a_time",
                      score: str = "sqnr", accuracy_fn: Callable[[Any], float] | None = None) -> list[dict[str, Any]]:
    """Ranked table (most sensitive first): {rank, layer, op, sqnr_db | accuracy}."""
    acts, weights = fake_quants(gm)
    everything = list(acts.values()) + list(weights.values())
    set_enabled(weights.values(), observer=True)
    set_enabled(acts.values(), observer=False)
    set_enabled(everything, fake_quant=False)
    ref = _logits(gm, batches) if score == "sqnr" else None
    rows = []
    for layer in layers:
        if mode == "one_at_a_time":
            _only(gm, layer)
        else:
            apply_float_layers(gm, layers, {layer.name})
        if score == "sqnr":
            value = sqnr_db(ref, _logits(gm, batches))
        else:
            assert accuracy_fn is not None
            value = accuracy_fn(gm)
        rows.append({"layer": layer.name, "op": layer.op, score if score == "accuracy" else "sqnr_db": round(value, 4)})
    set_enabled(everything, fake_quant=True)
    key = "accuracy" if score == "accuracy" else "sqnr_db"
    # one at a time: a low score means quantizing this layer alone hurts; all but one: a high score means
    # leaving this layer in float helps most
    rows.sort(key=lambda r: r[key], reverse=(mode == "all_but_one"))
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows


def choose_fallback(gm, layers: list[Layer], ranked: list[dict[str, Any]], accuracy_fn: Callable[[Any], float],
                    float_accuracy: float, max_drop: float, max_layers: int) -> dict[str, Any]:
    """Keep the most sensitive layers in float until float_accuracy - accuracy <= max_drop. Candidates are tried
    in rank order and a layer stays float only if it raised accuracy: a per-layer score (SQNR above all) does not
    always track accuracy, and a float layer that does not help still costs latency (numbers:
    benchmarks/results/design-notes.md). At most `max_layers` stay float, at most 2x that are tried."""
    float_names: list[str] = []
    apply_float_layers(gm, layers, set())
    acc = accuracy_fn(gm)
    steps: list[dict[str, Any]] = [{"float_layers": 0, "accuracy": acc, "drop": float_accuracy - acc}]
    for row in ranked[: 2 * max_layers]:
        if float_accuracy - acc <= max_drop + 1e-12 or len(float_names) >= max_layers:
            break
        apply_float_layers(gm, layers, {*float_names, row["layer"]})
        trial = accuracy_fn(gm)
        kept = trial > acc
        if kept:
            float_names.append(row["layer"])
            acc = trial
        steps.append({"float_layers": len(float_names), "layer": row["layer"], "accuracy": trial,
                      "drop": float_accuracy - trial, "kept": kept})
        log.info("fallback: %s in float -> fake-quant accuracy %.4f (drop %.4f): %s", row["layer"], trial,
                 float_accuracy - trial, "kept float" if kept else "no gain, back to INT8")
    apply_float_layers(gm, layers, set())
    met = float_accuracy - acc <= max_drop + 1e-12
    return {"float_layers": float_names, "steps": steps, "budget_met": met, "max_accuracy_drop": max_drop,
            "float_accuracy": float_accuracy, "accuracy": acc}
