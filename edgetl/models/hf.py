"""Hugging Face models: `hf:<hub id>` (needs a network, or a warm cache) and `hf:<local folder>`.

The classification head is replaced to match the data's labels. The wrapped module's forward takes the
same named inputs that the exported ONNX model and deployed bundles take.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgetl.errors import ModelError
from edgetl.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

log = logging.getLogger(__name__)


POOLINGS = ("cls", "mean")


class HFTextClassifier(nn.Module):
    """`pooling="cls"`: the model's own transformers head (BERT: [CLS] -> pooler -> classifier).
    `pooling="mean"`: the mean of the token states under the attention mask -> dropout -> classifier, which is
    how sentence-transformers models (all-MiniLM-L6-v2, ...) were trained to represent a sentence; their [CLS]
    pooler is left over from pre-training and carries little sentence meaning. The unused pooler is removed."""

    def __init__(self, hf: nn.Module, pooling: str = "cls"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ModelError(f"model.pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")
        self.hf = hf
        self.pooling = pooling
        if pooling == "mean":
            head = getattr(hf, "classifier", None)
            hidden = getattr(hf.config, "hidden_size", None)
            if not isinstance(head, nn.Linear) or head.in_features != hidden:
                raise ModelError(
                    f"model.pooling: mean pooling needs a transformers model whose head is one nn.Linear over the "
                    f"hidden states (BERT family); {type(hf).__name__} has {type(head).__name__} as `classifier`",
                    hint="set model.pooling: cls to use the model's own classification head",
                )
            if getattr(hf.base_model, "pooler", None) is not None:
                hf.base_model.pooler = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None):
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if self.pooling == "cls":
            return self.hf(**kwargs).logits
        states = self.hf.base_model(**kwargs)[0]
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        dropout = getattr(self.hf, "dropout", None)
        return self.hf.classifier(dropout(pooled) if dropout is not None else pooled)


def sentence_pooling(ref: str, revision: str | None = None) -> str | None:
    """The pooling a sentence-transformers folder or hub repo declares (modules.json -> Pooling config):
    "mean", "cls", or None when it declares none (a plain transformers model) or cannot be read."""

    def read(name: str) -> Any:
        if Path(ref).is_dir():
            local = Path(ref) / name
            return json.loads(local.read_text()) if local.exists() else None
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(ref, name, revision=revision)).read_text())

    try:
        modules = read("modules.json") or []
        pool = next((m for m in modules if str(m.get("type", "")).endswith(".Pooling")), None)
        cfg = read(f"{pool['path']}/config.json") if pool else None
    except Exception as exc:  # noqa: BLE001 - no network / not a sentence-transformers repo: the model's own head
        log.debug("no sentence-transformers pooling config for %s: %s", ref, exc)
        return None
    if not cfg:
        return None
    modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    log.warning("%s pools with %s, which edgetl does not build; using the model's own head (model.pooling: cls)", ref, modes)
    return None


def resolve_pooling(ref: str, requested: str, revision: str | None = None) -> str:
    if requested != "auto":
        return requested
    declared = sentence_pooling(ref, revision)
    if declared:
        log.info("text pooling: %s (declared by the model's sentence-transformers config; model.pooling overrides)", declared)
    return declared or "cls"


class HFImageClassifier(nn.Module):
    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.hf(pixel_values=pixel_values).logits


def _quiet_transformers() -> None:
    """transformers prints load reports and progress bars; edgetl logs what matters itself."""
    from transformers.utils import logging as hf_logging

    if not log.isEnabledFor(logging.DEBUG):
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _auto_class(task: str):
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

    return AutoModelForSequenceClassification if task == "text" else AutoModelForImageClassification


def _hub_error(ref: str, exc: Exception) -> ModelError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return ModelError(
        f"could not load Hugging Face model {ref!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        hint=(
            "HF_HUB_OFFLINE=1 is set, so only cached models load; unset it or use a local folder (hf:./my-model)"
            if offline
            else "check the id and your network, or download the model once and use hf:<local folder>"
        ),
    )


def load_hf(ref: str, task: str, label_names: list[str], *, revision: str | None = None,
            trust_remote_code: bool = False, pretrained: bool = True, max_length: int | None = None,
            input_size: int | None = None, pooling: str = "auto") -> tuple[nn.Module, Preprocessing, dict[str, Path], dict]:
    """Returns (wrapped module, preprocessing, carried files, builder)."""
    from transformers import AutoConfig

    _quiet_transformers()

    is_local = Path(ref).exists()
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision and not is_local:
        kwargs["revision"] = revision
    id2label = dict(enumerate(label_names))
    try:
        config = AutoConfig.from_pretrained(ref, num_labels=len(label_names), id2label=id2label,
                                            label2id={v: k for k, v in id2label.items()}, **kwargs)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors
        raise _hub_error(ref, exc) from None
    auto = _auto_class(task)
    if type(config) not in auto._model_mapping:
        raise ModelError(
            f"hf:{ref} ({config.model_type}) has no {'sequence' if task == 'text' else 'image'} classification head "
            f"in transformers, but the data is {task} classification",
            hint="pick a model whose architecture supports the data's task",
        )
    try:
        if pretrained:
            hf = auto.from_pretrained(ref, config=config, ignore_mismatched_sizes=True, **kwargs)
        else:
            hf = auto.from_config(config, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise _hub_error(ref, exc) from None
    hf.eval()
    workdir = Path(tempfile.mkdtemp(prefix="edgetl-hf-"))
    config_path = workdir / "hf_config.json"
    config_path.write_text(config.to_json_string())
    files = {"hf_config.json": config_path}
    builder = {"kind": "hf", "task": task, "config": "hf_config.json"}
    if task == "text":
        files["tokenizer.json"], input_names = _tokenizer_file(ref, workdir, kwargs)
        pre = Preprocessing(kind="text", input_names=input_names, max_length=max_length or 128, tokenizer_file="tokenizer.json")
        builder["pooling"] = resolve_pooling(ref, pooling, None if is_local else revision)
        return HFTextClassifier(hf, builder["pooling"]), pre, files, builder
    pre = _image_preprocessing(ref, config, input_size)
    return HFImageClassifier(hf), pre, files, builder


def _tokenizer_file(ref: str, workdir: Path, kwargs: dict[str, Any]) -> tuple[Path, list[str]]:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(ref, **kwargs)
    except Exception as exc:
        raise _hub_error(ref, exc) from None
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"hf:{ref} has no fast tokenizer (tokenizer.json); edgetl bundles need one")
    path = workdir / "tokenizer.json"
    tok.backend_tokenizer.save(str(path))
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tok.model_input_names]
    return path, names


def _image_preprocessing(ref: str, config: Any, input_size: int | None) -> Preprocessing:
    mean, std, size = list(IMAGENET_MEAN), list(IMAGENET_STD), getattr(config, "image_size", 224)
    proc_file = Path(ref) / "preprocessor_config.json"
    proc: dict[str, Any] = {}
    if proc_file.exists():
        proc = json.loads(proc_file.read_text())
    else:
        try:
            from transformers import AutoImageProcessor

            proc = AutoImageProcessor.from_pretrained(ref).to_dict()
        except Exception:  # noqa: BLE001 - fall back to the config's image size and ImageNet statistics
            log.warning("hf:%s has no image processor config; using ImageNet mean/std", ref)
    mean = list(proc.get("image_mean", mean))
    std = list(proc.get("image_std", std))
    s = proc.get("size", size)
    if isinstance(s, dict):
        s = s.get("height") or s.get("shortest_edge") or size
    if isinstance(size, (list, tuple)):
        size = size[0]
    return Preprocessing(kind="image", input_names=["pixel_values"], size=int(input_size or s),
                         channels=int(getattr(config, "num_channels", 3)), mean=mean, std=std)


def build_hf(builder: dict[str, Any], files: dict[str, Path]) -> nn.Module:
    from transformers import AutoConfig

    config_path = files.get(builder.get("config", "hf_config.json"))
    if config_path is None:
        raise ModelError("saved Hugging Face model is missing hf_config.json")
    config = AutoConfig.from_pretrained(str(config_path.parent), **{}) if config_path.name == "config.json" else _config_from_json(config_path)
    hf = _auto_class(builder["task"]).from_config(config)
    # models saved before `pooling` existed used the model's own head
    return HFTextClassifier(hf, builder.get("pooling", "cls")) if builder["task"] == "text" else HFImageClassifier(hf)


def _config_from_json(path: Path):
    from transformers import AutoConfig

    data = json.loads(path.read_text())
    model_type = data.pop("model_type")
    return AutoConfig.for_model(model_type, **data)
