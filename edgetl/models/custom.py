"""Models edgetl does not build itself, turned into an EdgeModel: an `nn.Module` handed to the Python API,
or a factory a recipe names as `model.source: python:package.module:function`.

The factory contract (docs/api.md): `function(num_labels=N, **optional)` returns one of
  - an `nn.Module` (an image classifier; ImageNet normalisation, input size from `model.input_size` or 224),
  - `(nn.Module, preprocessing)` with `preprocessing` a dict (keys in PREPROCESSING_KEYS) or a Preprocessing,
  - an EdgeModel (any task, e.g. a text model carrying its tokenizer.json in `files`).
Optional keyword parameters it may declare: `pretrained` (False when a saved model is rebuilt: its weights
come from the checkpoint), `input_size`, `max_length`. `forward` takes the model inputs by name (its own
parameter names, e.g. `x`) and returns logits shaped (batch, num_labels). The builder records the factory, so
`load_model` rebuilds the architecture by calling it again; loading a saved folder imports that module.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edgetl.errors import ModelError, shown

log = logging.getLogger(__name__)

PREFIX = "python:"
PREPROCESSING_KEYS = ("kind", "size", "channels", "mean", "std", "resize", "input_names", "max_length", "tokenizer")
OPTIONAL_KWARGS = ("pretrained", "input_size", "max_length")
FORMAT_HINT = "write it as python:package.module:function, e.g. python:examples.own_model_factory:build"


def parse_ref(source: str) -> tuple[str, str]:
    """`python:pkg.mod:fn` -> ("pkg.mod", "fn"); a ModelError naming the format otherwise."""
    ref = source[len(PREFIX):] if source.startswith(PREFIX) else source
    module, sep, func = ref.partition(":")
    names = module.split(".") + [func]
    if not sep or not all(n.isidentifier() for n in names):
        raise ModelError(f"model.source: {shown(source)} does not name a factory function", hint=FORMAT_HINT)
    return module, func


def _find_spec(module: str):
    """The module's spec; a module beside the current folder counts too (as `python -m` and uvicorn see it)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
    return spec


def factory_file(source: str) -> Path | None:
    """The file that defines the factory's module (its content goes into the run's keys), if it is one."""
    try:
        spec = _find_spec(parse_ref(source)[0])
    except ModelError:
        return None
    return Path(spec.origin) if spec is not None and spec.origin and Path(spec.origin).is_file() else None


def factory_problems(source: str) -> list[str]:
    """For `edgetl validate`: the factory's module imports and holds a callable of that name."""
    try:
        resolve(source)
    except ModelError as exc:
        return [str(exc) + (f" ({exc.hint})" if exc.hint else "")]
    return []


def resolve(source: str):
    module_name, func = parse_ref(source)
    if _find_spec(module_name) is None:
        raise ModelError(f"model.source: the module {module_name!r} of {shown(source)} cannot be found",
                         hint="install the package that holds it, or run edgetl from the folder the module path "
                              "starts in (the current folder is searched too)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing: say so, with its error
        raise ModelError(f"model.source: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, func, None)
    if not callable(fn):
        raise ModelError(f"model.source: {module_name} has no function {func!r}",
                         hint=f"define {func}(num_labels) in {module_name}, returning an nn.Module")
    return fn


def call_factory(source: str, num_labels: int, **optional: Any) -> tuple[Any, dict[str, Any]]:
    """Call the factory with num_labels and the optional keywords it declares. Returns its output and the
    optional keywords it took (recorded in the builder, `pretrained` aside)."""
    fn = resolve(source)
    try:
        params = dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "num_labels" not in params and not var_kw:
        raise ModelError(f"model.source: {shown(source)} takes ({', '.join(params)}), but edgetl calls it with "
                         "num_labels=<number of classes in the data>",
                         hint="add a num_labels parameter and size the classification head with it")
    taken = {k: v for k, v in optional.items() if v is not None and (k in params or var_kw)}
    try:
        out = fn(num_labels=num_labels, **taken)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the factory is the user's code: name it with its error
        raise ModelError(f"model.source: {shown(source)}(num_labels={num_labels}) raised "
                         f"{type(exc).__name__}: {exc}") from exc
    return out, {k: v for k, v in taken.items() if k != "pretrained"}


def load_python(cfg: Any, task: str, label_names: list[str]):
    """The recipe's `python:` source as an EdgeModel with a head for `label_names`."""
    out, kwargs = call_factory(cfg.source, len(label_names), pretrained=cfg.pretrained, input_size=cfg.input_size,
                               max_length=cfg.max_length)
    model = edge_model(out, label_names=label_names, task=task, source=cfg.source, input_size=cfg.input_size)
    model.builder = {"kind": "python", "factory": cfg.source, "num_labels": len(label_names), "kwargs": kwargs}
    return model


def build_python(builder: dict[str, Any]):
    """The factory's architecture, for load_model (weights come from the checkpoint)."""
    from torch import nn

    from edgetl.models.base import EdgeModel

    log.info("rebuilding %s (imports its module)", builder["factory"])
    out, _ = call_factory(builder["factory"], int(builder["num_labels"]), pretrained=False,
                          **dict(builder.get("kwargs") or {}))
    module = out.module if isinstance(out, EdgeModel) else out[0] if isinstance(out, tuple) else out
    if not isinstance(module, nn.Module):
        raise ModelError(f"{builder['factory']} returned {type(module).__name__}, expected an nn.Module")
    return module


def edge_model(obj: Any, *, label_names: list[str] | None = None, task: str | None = None,
               preprocessing: Any = None, source: str | None = None, input_size: int | None = None):
    """An EdgeModel from an EdgeModel (as is), an nn.Module, or (nn.Module, preprocessing). `label_names`
    default to "0".."N-1" with N the width of the module's output."""
    from torch import nn

    from edgetl.models.base import EdgeModel

    if isinstance(obj, EdgeModel):
        if task is not None and obj.task != task:
            raise ModelError(f"{obj.source} is a {obj.task} model but the data is {task}")
        return obj
    if isinstance(obj, tuple) and len(obj) == 2 and preprocessing is None:
        obj, preprocessing = obj
    if not isinstance(obj, nn.Module):
        raise ModelError(f"expected an nn.Module, an edgetl EdgeModel or (nn.Module, preprocessing dict); got "
                         f"{type(obj).__name__}")
    pre, files = _preprocessing(obj, preprocessing, task, input_size)
    model = EdgeModel(module=obj, task=pre.kind, preprocessing=pre, label_names=list(label_names or []),
                      builder={"kind": "module", "class": f"{type(obj).__module__}.{type(obj).__qualname__}"},
                      source=source or type(obj).__name__, files=files)
    width = _output_width(model)
    if not label_names:
        model.label_names = [str(i) for i in range(width)]
    elif width != len(label_names):
        raise ModelError(f"{model.source} outputs {width} logits per example but the data has {len(label_names)} "
                         "labels", hint="size the model's classification head to the number of classes "
                                        "(a factory gets it as num_labels)")
    return model


def _forward_names(module) -> list[str]:
    params = [p for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    return [p.name for p in params]


def _preprocessing(module, given: Any, task: str | None, input_size: int | None):
    from edgetl.runtime.preprocess import Preprocessing

    if isinstance(given, Preprocessing):
        return given, {}
    spec = dict(given or {})
    unknown = sorted(set(spec) - set(PREPROCESSING_KEYS))
    if unknown:
        raise ModelError(f"preprocessing has unknown keys {unknown}; expected some of {', '.join(PREPROCESSING_KEYS)}")
    kind = spec.pop("kind", task or "image")
    if task is not None and kind != task:
        raise ModelError(f"the model's preprocessing is for {kind} inputs but the data is {task}")
    names = list(spec.pop("input_names", None) or [])
    forward = _forward_names(module)
    files: dict[str, Path] = {}
    if kind == "image":
        if not names:
            if not forward:
                raise ModelError(f"{type(module).__name__}.forward takes no named input; edgetl calls "
                                 "module(**{name: images}) with the name of forward's first parameter",
                                 hint="give forward a named parameter (e.g. forward(self, x)), or set "
                                      "preprocessing input_names")
            names = forward[:1]
        spec.setdefault("size", input_size or 224)
        pre = Preprocessing(kind="image", input_names=names, **spec)
    elif kind == "text":
        tok = spec.pop("tokenizer", None)
        if tok is None or not Path(tok).is_file():
            raise ModelError(f"a text model needs preprocessing tokenizer: the path of its tokenizer.json (got {tok!r})")
        files["tokenizer.json"] = Path(tok)
        names = names or [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in forward] or ["input_ids"]
        pre = Preprocessing(kind="text", input_names=names, max_length=spec.pop("max_length", 128),
                            tokenizer_file="tokenizer.json", **spec)
    else:
        raise ModelError(f"preprocessing kind {kind!r}; expected image or text")
    return pre, files


def _output_width(model) -> int:
    """One forward pass on example inputs: the logits' width, or a ModelError saying what came back."""
    import torch

    module = model.module
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(**model.example_inputs(batch=2))
    except Exception as exc:  # noqa: BLE001 - the user's forward failed on the inputs edgetl will feed it
        shapes = {k: tuple(v.shape) for k, v in model.example_inputs(batch=2).items()}
        raise ModelError(f"{model.source}: forward(**{shapes}) failed: {type(exc).__name__}: {exc}",
                         hint="check the preprocessing (input size, channels, input_names) matches the model") from exc
    finally:
        module.train(was)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        what = f"a tensor shaped {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{model.source}: forward returned {what} for a batch of 2; expected logits shaped "
                         "(batch, num_labels)", hint="return the logits tensor itself (wrap a model that returns a "
                                                     "dict or tuple in a module whose forward picks the logits)")
    return int(out.shape[1])
