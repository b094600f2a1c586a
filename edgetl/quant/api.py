"""`edgetl.quantize`: INT8 by post-training quantization of an FP32 ONNX file (`method: ptq`, ONNX Runtime's
static quantizer) or by quantization-aware training of a PyTorch model (`method: qat`, PT2E fake quantization
under TensorRT's rules), written in one or both Q/DQ layouts (edgetl/quant/config.py)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.quant.config import CALIBRATION_SEED, QuantizeConfig
from edgetl.result import Result


def quantize(model: Any, train: Any = None, eval_data: Any = None, config: QuantizeConfig | dict[str, Any] | None = None,
             out: str | Path | None = None, *, calibration: Any = None, labels: list[str] | None = None, seed: int = 0,
             progress: Any = None, loss: Callable | None = None, metric: Callable | None = None,
             preprocessing: Any = None, field_prefix: str = "") -> Result:
    """Quantize `model` to INT8 into the folder `out`.

    method ptq (the default): `model` is an FP32 ONNX file written by edgetl (model.onnx with its model.json, or
    the folder holding them). Calibration examples: `calibration` (raw inputs: uint8 images N,H,W[,C] or a list
    of strings; no labels needed), else a stratified sample of `config.samples` from `train`. `eval_data`
    (labelled) is needed only by `config.fallback`. An image classifier ONNX from elsewhere (no model.json) needs
    `preprocessing` (edgetl.runtime.preprocess.Preprocessing: size, mean, std) and takes `labels` (default
    "0".."N-1").
    method qat: `model` is an nn.Module, (nn.Module, preprocessing) or EdgeModel, trained on `train` and
    evaluated on `eval_data` (any form edgetl.data.inputs takes); loss(logits, labels) and metric(logits,
    labels) replace cross-entropy and top-1 accuracy.

    One layout is written to out/model.onnx; `layout: both` to out/onnx-onnxruntime/ and out/onnx-tensorrt/.
    Returns Result(model: the fake-quant EdgeModel for qat, None for ptq; path: the first layout's model.onnx;
    metrics: what report.json shows for a quantize stage, plus `files` {layout: path} and `infos` {layout: the
    sidecar's info (qdq_nodes, check_qdq_violations, parity, ...)}). Raises RecipeError for a config that does
    not fit the model, ExportError when an INT8 file disagrees with the model it came from."""
    from edgetl.errors import RecipeError

    cfg = config if isinstance(config, QuantizeConfig) else QuantizeConfig.model_validate(config or {})
    problems = cfg.problems()
    if problems:
        raise RecipeError("the quantize config does not hold together:",
                          problems=[f"{field_prefix}{f}: {msg}" for f, msg in problems])
    if out is None:
        raise RecipeError("quantize writes INT8 ONNX files: pass `out`, the folder to write them into")
    out = Path(out)
    layouts = cfg.layouts()
    folders = {layouts[0]: out} if len(layouts) == 1 else {lay: out / f"onnx-{lay}" for lay in layouts}
    is_file = isinstance(model, (str, Path))
    if cfg.method == "ptq":
        if not is_file:
            raise RecipeError(f"{field_prefix}method: ptq quantizes an FP32 ONNX file, and a PyTorch model was given",
                              hint="export it first (edgetl.export_onnx(model, folder)) and pass the model.onnx, or "
                                   "use method='qat' to quantize the PyTorch model")
        return _ptq(Path(model), train, eval_data, cfg, folders, calibration, labels, preprocessing, seed,
                    field_prefix)
    if is_file:
        raise RecipeError(f"{field_prefix}method: qat trains the PyTorch model, and a file was given ({model})",
                          hint="pass the nn.Module / EdgeModel (edgetl.models.base.load_model(folder) loads a saved "
                               "one), or use method='ptq' for an ONNX file")
    return _qat(model, train, eval_data, cfg, folders, out, calibration, labels, seed, progress, loss, metric)


def _ptq(src: Path, train: Any, eval_data: Any, cfg: QuantizeConfig, folders: dict[str, Path], calibration: Any,
         labels: list[str] | None, preprocessing: Any, seed: int, field_prefix: str) -> Result:
    from edgetl.backends.onnx_file import read_onnx
    from edgetl.data.inputs import as_split
    from edgetl.quant.ptq import ptq_onnx
    from edgetl.runtime.meta import meta_path

    src = src / "model.onnx" if src.is_dir() else src
    proto = read_onnx(src)  # a missing, empty or corrupt file is an error naming it
    calib = _calibration_split(calibration, train, cfg.samples, seed)
    evals = as_split(eval_data, "eval") if eval_data is not None else None
    scratch = None
    if not meta_path(src).exists():
        first = next(iter(folders.values()))
        first.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".edgetl-src-", dir=first))
        src = _with_sidecar(src, proto, preprocessing, labels, scratch)
    try:
        infos, metrics = ptq_onnx(src, folders, cfg, calib, eval_split=evals, seed=seed, field_prefix=field_prefix)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return _result(None, folders, infos, metrics)


def _with_sidecar(src: Path, proto: Any, preprocessing: Any, labels: list[str] | None, folder: Path) -> Path:
    """A copy of an ONNX file from elsewhere in `folder` with the model.json edgetl reads (labels, preprocessing)."""
    from edgetl.backends.onnx_graph import io_spec
    from edgetl.errors import ModelError
    from edgetl.runtime.meta import write_onnx_meta

    if preprocessing is None or preprocessing.kind != "image":
        raise ModelError(f"{src} has no model.json beside it, so how its inputs are made is unknown",
                         hint="for an image classifier say how: --input-size, --mean and --std (Python: "
                              "preprocessing=Preprocessing(kind='image', ...)); a text model must come from edgetl "
                              "(its folder holds the tokenizer and model.json)")
    io = io_spec(proto)
    if len(io["inputs"]) != 1 or len(io["inputs"][0]["shape"]) != 4 or len(io["outputs"]) < 1:
        raise ModelError(f"{src}: expected an image classifier with one NCHW input and a logits output, found inputs "
                         f"{[(i['name'], i['shape']) for i in io['inputs']]}",
                         hint="export the model with one image input (batch, channels, height, width)")
    width = io["outputs"][0]["shape"][-1]
    names = list(labels) if labels else ([str(i) for i in range(width)] if isinstance(width, int) and width else None)
    if names is None:
        raise ModelError(f"{src}: the number of classes (the logits' last dimension) is not fixed in the file",
                         hint="pass the label names (--data gives them)")
    if isinstance(width, int) and width and len(names) != width:
        raise ModelError(f"{src} outputs {width} logits but {len(names)} labels were given",
                         hint="use data with as many classes as the model has outputs")
    shutil.copyfile(src, folder / "model.onnx")
    pre = dataclasses.replace(preprocessing, input_names=[io["inputs"][0]["name"]])
    write_onnx_meta(folder / "model.onnx", labels=names, preprocessing=pre, task="image",
                    info={"source": str(src)})
    return folder / "model.onnx"


def _qat(model: Any, train: Any, eval_data: Any, cfg: QuantizeConfig, folders: dict[str, Path], out: Path,
         calibration: Any, labels: list[str] | None, seed: int, progress: Any, loss: Callable | None,
         metric: Callable | None) -> Result:
    from edgetl.quant.qat_flow import qat_model
    from edgetl.train.inputs import prepare

    if train is None:
        from edgetl.errors import DataError

        raise DataError("qat trains the model: pass train data (and eval data)")
    model, data = prepare(model, train, eval_data, labels=labels)
    calib = _calibration_split(calibration, data.train, cfg.samples, seed)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".edgetl-qat-", dir=out))
    try:
        infos, metrics, fake_quant = qat_model(model, data, calib, folders, cfg, work_dir=work, seed=seed,
                                               progress=progress, loss=loss, metric=metric)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _result(fake_quant, folders, infos, metrics)


def _calibration_split(calibration: Any, train: Any, samples: int, seed: int) -> Any:
    """The calibration examples as a Split: `calibration` as given (raw inputs, or a Split), else a stratified
    sample of `samples` from `train`."""
    from edgetl.data.datasets import Split, stratified_subset
    from edgetl.data.inputs import as_split
    from edgetl.errors import DataError

    if calibration is not None:
        if isinstance(calibration, Split):
            return calibration
        inputs = calibration if isinstance(calibration, list) else np.asarray(calibration)
        if not len(inputs):
            raise DataError("calibration holds no examples", hint="pass a few hundred typical inputs")
        return Split(inputs, np.full(len(inputs), -1, dtype=np.int64))
    if train is None:
        raise DataError("quantize needs calibration examples: pass `calibration` (raw inputs) or `train` data")
    split = as_split(train, "train")
    return split.take(stratified_subset(split.labels, samples, seed + CALIBRATION_SEED))


def _result(model: Any, folders: dict[str, Path], infos: dict[str, dict[str, Any]], metrics: dict[str, Any]) -> Result:
    files = {lay: folders[lay] / "model.onnx" for lay in infos}
    metrics = {**metrics, "files": {k: str(v) for k, v in files.items()}, "infos": infos}
    return Result(model, next(iter(files.values())), metrics)
