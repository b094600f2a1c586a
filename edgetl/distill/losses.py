"""KD loss terms for the shared Trainer. Each term is a callable `(inputs, labels, logits) -> loss` (the
Trainer's `extra_losses`), added to the Trainer's own hard-label cross-entropy.

- `LogitKD`: KL at temperature T scaled by T^2, mixed with the hard-label CE by `alpha`.
- `FeatureKD`: MSE between chosen student/teacher module outputs through a learned projector (hint KD).
- `AttentionTransfer`: attention probabilities of transformer layers (KL, averaged over heads, so pruned
  head counts still match) or spatial attention maps of CNN feature maps (Zagoruyko & Komodakis).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgetl.errors import RecipeError
from edgetl.models.encoder import encoder_layers

# ---------------------------------------------------------------- pure loss functions


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target loss: KL(teacher_T || student_T) * T^2 (batch mean)."""
    t = float(temperature)
    log_p = F.log_softmax(student_logits.float() / t, dim=-1)
    q = F.softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean") * (t * t)


def attention_probs(q: torch.Tensor, k: torch.Tensor, head_size: int, mask: torch.Tensor | None) -> torch.Tensor:
    """Head-averaged attention probabilities [B, L, L] from query/key projections [B, L, H*d]."""
    b, length, _ = q.shape
    qh = q.view(b, length, -1, head_size).transpose(1, 2).float()
    kh = k.view(b, length, -1, head_size).transpose(1, 2).float()
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(head_size)
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e4)
    return scores.softmax(-1).mean(1)


def attention_kl(p_student: torch.Tensor, p_teacher: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """KL(teacher || student) over keys, averaged over the real (unpadded) query positions."""
    eps = 1e-8
    kl = (p_teacher * ((p_teacher + eps).log() - (p_student + eps).log())).sum(-1)  # [B, L]
    if mask is None:
        return kl.mean()
    m = mask.to(kl.dtype)
    return (kl * m).sum() / m.sum().clamp_min(1.0)


def spatial_attention(feature: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """L2-normalised spatial attention map of a feature map [B, C, H, W] -> [B, H*W]."""
    a = feature.float().pow(2).mean(1, keepdim=True)
    if size is not None and tuple(a.shape[-2:]) != tuple(size):
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    return F.normalize(a.flatten(1), dim=1)


def spatial_attention_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    at = spatial_attention(teacher)
    st = spatial_attention(student, tuple(teacher.shape[-2:]))
    return (st - at).pow(2).sum(1).mean()


# ---------------------------------------------------------------- taps (forward hooks)


class Tap:
    """Keeps the latest output of a module (the first element when it returns a tuple)."""

    def __init__(self, module: nn.Module):
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output):
        self.value = output[0] if isinstance(output, (tuple, list)) else output

    def remove(self) -> None:
        self.handle.remove()
        self.value = None


def get_module(root: nn.Module, name: str, role: str, field: str) -> nn.Module:
    try:
        return root.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in root.named_modules() if n][:12]
        raise RecipeError(
            f"{field}: the {role} has no module named {name!r}",
            hint=f"use a module name of the {role}, e.g. {', '.join(names)} ...",
        ) from None


# ---------------------------------------------------------------- loss terms


class LogitKD:
    """alpha * CE + (1 - alpha) * T^2 * KL. The Trainer already adds CE (weight 1), so this term contributes
    (alpha - 1) * CE + (1 - alpha) * KD and the sum comes out as the mixture. `task_loss`: the Trainer's own
    loss when the caller replaced cross-entropy (then it is what alpha weighs)."""

    def __init__(self, teacher: Any, temperature: float = 4.0, alpha: float = 0.5, label_smoothing: float = 0.0,
                 task_loss: Any = None):
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.task_loss = task_loss

    def to(self, device) -> LogitKD:
        if hasattr(self.teacher, "to"):
            self.teacher.to(device)
        return self

    def __call__(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        teacher_logits = self.teacher.logits(inputs).to(logits.device)
        kd = kd_kl(logits, teacher_logits, self.temperature)
        if self.alpha >= 1.0:
            return kd * 0.0
        if self.task_loss is not None:
            ce = self.task_loss(logits, labels)
        else:
            ce = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        return (self.alpha - 1.0) * ce + (1.0 - self.alpha) * kd


def _projector(student_shape: torch.Size, teacher_shape: torch.Size, field: str) -> nn.Module:
    if len(student_shape) == 4 and len(teacher_shape) == 4:
        cs, ct = student_shape[1], teacher_shape[1]
        proj: nn.Module = nn.Conv2d(cs, ct, 1, bias=False)
        if cs == ct:
            with torch.no_grad():
                proj.weight.copy_(torch.eye(cs).view(cs, cs, 1, 1))
        return proj
    if len(student_shape) == 3 and len(teacher_shape) == 3:
        cs, ct = student_shape[-1], teacher_shape[-1]
        lin = nn.Linear(cs, ct, bias=False)
        if cs == ct:
            with torch.no_grad():
                lin.weight.copy_(torch.eye(cs))
        return lin
    raise RecipeError(
        f"{field}: student output {tuple(student_shape)} and teacher output {tuple(teacher_shape)} cannot be "
        "matched (expected two feature maps [B,C,H,W] or two token features [B,L,C])",
        hint="pick modules that output feature maps or token features, e.g. blocks rather than pooling or heads",
    )


class FeatureKD:
    """Hint KD: sum of weight * MSE(projector(student feature), teacher feature) over layer pairs."""

    def __init__(self, student: nn.Module, teacher: Any, pairs: list[Any], field: str = "kd.features"):
        self.teacher = teacher
        self.pairs = []
        self.projectors = nn.ModuleList()
        for i, pair in enumerate(pairs):
            s_tap = Tap(get_module(student, pair.student, "student", f"{field}.{i}.student"))
            t_tap = teacher.tap(pair.teacher, f"{field}.{i}.teacher")
            self.pairs.append((s_tap, t_tap, float(pair.weight), f"{field}.{i}"))

    def build(self, student: nn.Module, example_inputs: dict[str, torch.Tensor]) -> None:
        """Create projectors from one forward pass of student and teacher (their output shapes)."""
        with torch.no_grad():
            was = student.training
            student.eval()
            student(**example_inputs)
            student.train(was)
            self.teacher.forward(example_inputs, force=True)
        for s_tap, t_tap, _w, field in self.pairs:
            self.projectors.append(_projector(s_tap.value.shape, t_tap.value.shape, field))

    def to(self, device) -> FeatureKD:
        self.projectors.to(device)
        self.teacher.to(device)
        return self

    def __call__(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        self.teacher.forward(inputs)
        total = logits.new_zeros(())
        for proj, (s_tap, t_tap, w, _field) in zip(self.projectors, self.pairs, strict=False):
            s = proj(s_tap.value)
            t = t_tap.value.detach().float()
            if s.dim() == 4 and s.shape[-2:] != t.shape[-2:]:
                s = F.adaptive_avg_pool2d(s, t.shape[-2:])
            total = total + w * F.mse_loss(s.float(), t)
        return total

    def remove(self) -> None:
        for s_tap, _t, _w, _f in self.pairs:
            s_tap.remove()


def default_attention_pairs(student: nn.Module, teacher: nn.Module, kept_layers: list[int] | None) -> list[tuple[int, int]]:
    s, t = encoder_layers(student), encoder_layers(teacher)
    if s is None or t is None:
        return []
    n_s, n_t = len(s[1]), len(t[1])
    if kept_layers and len(kept_layers) == n_s and max(kept_layers) < n_t:
        return list(enumerate(kept_layers))
    return [(i, round((i + 1) * n_t / n_s) - 1) for i in range(n_s)]


class AttentionTransfer:
    """Transformers: KL between head-averaged attention probabilities of paired layers.
    CNNs: squared L2 between normalised spatial attention maps of paired modules."""

    def __init__(self, student: nn.Module, teacher: Any, cfg: Any, *, kept_layers: list[int] | None = None,
                 field: str = "kd.attention"):
        self.teacher = teacher
        self.weight = float(cfg.weight)
        self.items: list[tuple[str, Any, Any, float]] = []  # (kind, student taps, teacher taps, weight)
        s_layers, t_layers = encoder_layers(student), encoder_layers(teacher.model.module)
        if s_layers is not None and t_layers is not None:
            if cfg.layers:
                pairs = [(self._layer_index(p.student, s_layers, "student", f"{field}.layers.{i}.student"),
                          self._layer_index(p.teacher, t_layers, "teacher", f"{field}.layers.{i}.teacher"), p.weight)
                         for i, p in enumerate(cfg.layers)]
            else:
                pairs = [(i, j, 1.0) for i, j in default_attention_pairs(student, teacher.model.module, kept_layers)]
            for i, j, w in pairs:
                s_att = s_layers[1][i].attention.self
                t_name = f"{t_layers[0]}.{j}.attention.self"
                s_taps = (Tap(s_att.query), Tap(s_att.key), s_att)
                t_att = teacher.model.module.get_submodule(t_name)
                t_taps = (teacher.tap(f"{t_name}.query", field), teacher.tap(f"{t_name}.key", field), t_att)
                self.items.append(("transformer", s_taps, t_taps, float(w)))
        else:
            if not cfg.layers:
                raise RecipeError(
                    f"{field}.layers: attention transfer on an image model needs layer pairs",
                    hint="list modules whose feature maps to match, e.g. [{student: features.13, teacher: features.13}]",
                )
            for i, p in enumerate(cfg.layers):
                s_tap = Tap(get_module(student, p.student, "student", f"{field}.layers.{i}.student"))
                t_tap = teacher.tap(p.teacher, f"{field}.layers.{i}.teacher")
                self.items.append(("spatial", s_tap, t_tap, float(p.weight)))

    @staticmethod
    def _layer_index(name: str, layers: tuple[str, nn.ModuleList], role: str, field: str) -> int:
        prefix = layers[0] + "."
        if name.startswith(prefix) and name[len(prefix):].isdigit() and int(name[len(prefix):]) < len(layers[1]):
            return int(name[len(prefix):])
        if name.isdigit() and int(name) < len(layers[1]):
            return int(name)
        raise RecipeError(f"{field}: {name!r} is not a layer of the {role}",
                          hint=f"use {prefix}N or N with N below {len(layers[1])}")

    def to(self, device) -> AttentionTransfer:
        self.teacher.to(device)
        return self

    def __call__(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        self.teacher.forward(inputs)
        mask = inputs.get("attention_mask")
        total = logits.new_zeros(())
        for kind, s, t, w in self.items:
            if kind == "transformer":
                p_s = attention_probs(s[0].value, s[1].value, s[2].attention_head_size, mask)
                with torch.no_grad():
                    p_t = attention_probs(t[0].value, t[1].value, t[2].attention_head_size, mask)
                total = total + w * attention_kl(p_s, p_t, mask)
            else:
                total = total + w * spatial_attention_loss(s.value, t.value.detach())
        return self.weight * total

    def remove(self) -> None:
        for kind, s, _t, _w in self.items:
            for tap in (s[:2] if kind == "transformer" else (s,)):
                tap.remove()
