"""`edgetl quantize MODEL.onnx --data DATA --out DIR`: post-training INT8 quantization of a classifier ONNX file,
over `edgetl.quantize` (the same function the `quantize` stage runs), with the INT8 file checked against the FP32
one and TensorRT's Q/DQ rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _floats(text: str | None, option: str) -> list[float] | None:
    from edgetl.errors import RecipeError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise RecipeError(f"{option} {text!r}: expected comma-separated numbers, e.g. 0.485,0.456,0.406") from None
    if len(values) not in (1, 3):
        raise RecipeError(f"{option} {text!r}: expected 1 or 3 values (one per channel), got {len(values)}")
    return values


def quantize(
    model: Annotated[Path, typer.Argument(help="An FP32 classifier ONNX file (or the folder holding model.onnx). "
                                               "Exported by edgetl, its model.json gives labels and preprocessing; "
                                               "an image classifier from elsewhere takes --input-size/--mean/--std.")],
    data: Annotated[str, typer.Option(
        "--data", help="Calibration and check data: a named set (fashion_mnist, mnist_5k, digits, rotten_tomatoes), "
                       "an imagefolder directory or a CSV file. Calibration samples its training part, the check "
                       "its eval part.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the INT8 model.onnx (+ model.json) into; "
                                                          "with --layout both, one sub-folder per layout.")],
    layout: Annotated[str, typer.Option(help="onnxruntime (fast on ONNX Runtime CPU), tensorrt (TensorRT's explicit "
                                             "quantization rules) or both.")] = "onnxruntime",
    calibration: Annotated[str, typer.Option(help="minmax, percentile or entropy.")] = "minmax",
    samples: Annotated[int, typer.Option(help="Calibration examples (stratified from the training part).")] = 256,
    check_samples: Annotated[int, typer.Option(help="Eval examples the INT8 file is compared with FP32 on.")] = 500,
    input_size: Annotated[int | None, typer.Option(help="Without model.json: the square input side (default: "
                                                         "the file's input height).", show_default=False)] = None,
    mean: Annotated[str | None, typer.Option(help="Without model.json: per-channel mean of 0..1 pixels "
                                                   "(default ImageNet's 0.485,0.456,0.406).", show_default=False)] = None,
    std: Annotated[str | None, typer.Option(help="Without model.json: per-channel std (default ImageNet's "
                                                  "0.229,0.224,0.225).", show_default=False)] = None,
) -> None:
    """Quantize MODEL to INT8 (PTQ) and print how the INT8 file compares with the FP32 one; exit 2 on bad input."""
    from edgetl.commands.guard import run_guarded

    def go() -> None:
        from pydantic import ValidationError

        from edgetl.data.datasets import load_eval_data
        from edgetl.errors import RecipeError
        from edgetl.quant.api import quantize as run_quantize
        from edgetl.quant.check_qdq import check_qdq
        from edgetl.quant.config import QuantizeConfig
        from edgetl.quant.parity import int8_vs_float

        try:
            config = QuantizeConfig(method="ptq", layout=layout, calibration=calibration, samples=samples)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise RecipeError(f"--{'-'.join(map(str, err['loc']))}: {err['msg']}") from None
        src = model / "model.onnx" if model.is_dir() else model
        pre = _preprocessing(src, input_size, mean, std)  # (the model first: a wrong path fails before data loads)
        bundle = load_eval_data(data, check_samples)
        result = run_quantize(src, bundle.train, None, config, out, labels=bundle.label_names, preprocessing=pre)
        evals = bundle.eval
        for lay, path in result.metrics["files"].items():
            info = result.metrics["infos"][lay]
            # (the FP32 file runs on the INT8 file's sidecar encoder: the same inputs, with or without its own)
            check = int8_vs_float(src, Path(path), evals.inputs, evals.labels)
            typer.echo(f"{lay}: wrote {path} ({info['qdq_nodes']} Q/DQ nodes, {info['activation_type']} activations)")
            accuracy = (f"; accuracy FP32 {check['float_accuracy']:.4f}, INT8 {check['int8_accuracy']:.4f}"
                        if "int8_accuracy" in check else "")
            typer.echo(f"  vs FP32 on {check['samples']} eval examples: top-1 agreement {check['top1_agreement']:.4f}, "
                       f"max |logit diff| {check['max_abs_diff']:.3g}{accuracy}")
            violations = check_qdq(path, allow_float=set(info.get("float_nodes") or []))
            typer.echo(f"  TensorRT Q/DQ rules: {len(violations)} violation(s)"
                       + (" (expected for this layout: ONNX Runtime's, not TensorRT's)" if lay == "onnxruntime"
                          and violations else ""))

    run_guarded(go)


def _preprocessing(src: Path, input_size: int | None, mean: str | None, std: str | None):
    """None for an ONNX file with model.json; else image preprocessing from the options and the file's input."""
    from edgetl.backends.onnx_file import read_onnx
    from edgetl.backends.onnx_graph import io_spec
    from edgetl.errors import RecipeError
    from edgetl.runtime.meta import meta_path
    from edgetl.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

    if meta_path(src).exists():
        if input_size or mean or std:
            raise RecipeError(f"--input-size/--mean/--std: {src} has a model.json, which already says how inputs are "
                              "made", hint="drop these options")
        return None
    shape = io_spec(read_onnx(src))["inputs"][0]["shape"]
    side = input_size or (shape[2] if len(shape) == 4 and isinstance(shape[2], int) and shape[2] > 0 else None)
    if side is None:
        raise RecipeError(f"--input-size: {src} has no fixed input height, so the image size is unknown",
                          hint="pass --input-size, e.g. 224")
    channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) and shape[1] > 0 else 3
    m = _floats(mean, "--mean") or list(IMAGENET_MEAN)
    s = _floats(std, "--std") or list(IMAGENET_STD)
    if any(v <= 0 for v in s):
        raise RecipeError(f"--std {std!r}: every value must be positive")
    return Preprocessing(kind="image", input_names=[], size=int(side), channels=int(channels),
                         mean=m * 3 if len(m) == 1 else m, std=s * 3 if len(s) == 1 else s)
