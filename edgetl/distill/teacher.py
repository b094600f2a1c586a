"""The frozen teacher a KD loss consults: runs once per training batch (shared by every KD term), adapts
the student's inputs when the teacher was trained at another resolution or normalisation, and optionally
caches its logits per example (keyed by a hash of the example's encoded inputs)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgetl.distill.losses import Tap, get_module
from edgetl.errors import RecipeError
from edgetl.models.base import EdgeModel
from edgetl.runtime.preprocess import Preprocessing

log = logging.getLogger(__name__)


class LogitCache:
    """Teacher logits per training example; in memory, saved to / loaded from an .npz file."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.table: dict[bytes, np.ndarray] = {}
        self.hits = 0
        self.misses = 0
        if path is not None and path.exists():
            data = np.load(path)
            self.table = {bytes(k): v for k, v in zip(data["keys"], data["logits"], strict=False)}
            log.info("teacher cache: %d examples from %s", len(self.table), path)

    @staticmethod
    def row_keys(inputs: dict[str, torch.Tensor]) -> list[bytes]:
        arrays = [inputs[k].detach().cpu().numpy() for k in sorted(inputs)]
        keys = []
        for i in range(len(arrays[0])):
            h = hashlib.blake2b(digest_size=16)
            for a in arrays:
                h.update(np.ascontiguousarray(a[i]).tobytes())
            keys.append(h.digest())
        return keys

    def save(self) -> None:
        if self.path is None or not self.table:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        keys = np.array(list(self.table), dtype="S16")
        np.savez(tmp, keys=keys, logits=np.stack(list(self.table.values())))
        tmp.replace(self.path)


def _image_adapter(student: Preprocessing, teacher: Preprocessing):
    same_norm = list(student.mean) == list(teacher.mean) and list(student.std) == list(teacher.std)
    if student.size == teacher.size and same_norm:
        return None
    s_mean = torch.tensor(student.mean).view(1, -1, 1, 1)
    s_std = torch.tensor(student.std).view(1, -1, 1, 1)
    t_mean = torch.tensor(teacher.mean).view(1, -1, 1, 1)
    t_std = torch.tensor(teacher.std).view(1, -1, 1, 1)
    name_s, name_t = student.input_names[0], teacher.input_names[0]

    def adapt(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = inputs[name_s]
        x = x * s_std.to(x.device) + s_mean.to(x.device)  # back to [0, 1] pixels
        if teacher.size and x.shape[-1] != teacher.size:
            x = F.interpolate(x, size=(teacher.size, teacher.size), mode="bilinear", align_corners=False)
        return {name_t: (x - t_mean.to(x.device)) / t_std.to(x.device)}

    return adapt


def _text_adapter(student: EdgeModel, teacher: EdgeModel):
    s_tok, t_tok = student.files.get("tokenizer.json"), teacher.files.get("tokenizer.json")
    if s_tok and t_tok and Path(s_tok).read_bytes() != Path(t_tok).read_bytes():
        raise RecipeError(
            f"the teacher ({teacher.source}) and the student ({student.source}) use different tokenizers",
            hint="text KD needs one tokenizer: distil into a student of the same family (e.g. keep_layers)",
        )
    names = list(teacher.preprocessing.input_names)

    def adapt(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {k: v for k, v in inputs.items() if k in names}
        if "token_type_ids" in names and "token_type_ids" not in out:
            out["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        return out

    return adapt


class Teacher:
    def __init__(self, model: EdgeModel, student: EdgeModel, cache: LogitCache | None = None):
        if model.task != student.task:
            raise RecipeError(f"the teacher is a {model.task} model but the student is a {student.task} model")
        if model.label_names != student.label_names:
            raise RecipeError(
                f"the teacher predicts {model.label_names}, the student {student.label_names}",
                hint="use a teacher trained on the same data (e.g. the `finetuned` artifact)",
            )
        self.model = model
        model.module.eval()
        for p in model.module.parameters():
            p.requires_grad_(False)
        if model.task == "image":
            self.adapt = _image_adapter(student.preprocessing, model.preprocessing)
        else:
            self.adapt = _text_adapter(student, model)
        self.cache = cache
        self.taps: dict[str, Tap] = {}
        self._last_inputs: Any = None
        self._last_logits: torch.Tensor | None = None
        self.forward_passes = 0

    def to(self, device) -> Teacher:
        """Follow the student onto the Trainer's device (the Trainer calls `.to` on loss terms)."""
        self.model.module.to(device)
        return self

    def tap(self, name: str, field: str) -> Tap:
        if name not in self.taps:
            self.taps[name] = Tap(get_module(self.model.module, name, "teacher", field))
        return self.taps[name]

    @torch.no_grad()
    def forward(self, inputs: dict[str, torch.Tensor], force: bool = False) -> torch.Tensor:
        """Teacher logits for this batch; one forward pass per batch however many KD terms ask."""
        if inputs is self._last_inputs and not force and self._last_logits is not None:
            return self._last_logits
        self.model.module.eval()
        feed = self.adapt(inputs) if self.adapt else inputs
        logits = self.model.module(**feed).float()
        self.forward_passes += 1
        self._last_inputs, self._last_logits = inputs, logits
        return logits

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cache is None:
            return self.forward(inputs)
        keys = LogitCache.row_keys(inputs)
        missing = [i for i, k in enumerate(keys) if k not in self.cache.table]
        self.cache.hits += len(keys) - len(missing)
        self.cache.misses += len(missing)
        if missing:
            idx = torch.tensor(missing)
            sub = {k: v[idx] for k, v in inputs.items()}
            out = self.forward(sub, force=True).cpu().numpy()
            for j, i in enumerate(missing):
                self.cache.table[keys[i]] = out[j].astype(np.float32)
        device = next(iter(inputs.values())).device
        return torch.from_numpy(np.stack([self.cache.table[k] for k in keys])).to(device)

    def close(self) -> None:
        for tap in self.taps.values():
            tap.remove()
        self.taps.clear()
        self._last_inputs = self._last_logits = None
        if self.cache is not None:
            self.cache.save()
