"""`edgetl export MODEL_DIR --out DIR`: a saved model folder to ONNX with the parity check, over
`edgetl.export_onnx` (the same function the `export` stage runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    model_dir: Annotated[Path, typer.Argument(help="A saved edgetl model folder (model.json + model.safetensors), "
                                                   "e.g. the `model` folder of a prune or finetune stage.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write model.onnx and its model.json into "
                                                          "(or a path ending in .onnx).")],
    opset: Annotated[int, typer.Option(help="ONNX opset (17 is safe for TensorRT 10.3 and ONNX Runtime).")] = 17,
    data: Annotated[str | None, typer.Option(
        "--data", help="Parity examples: the eval split of a named set (fashion_mnist, mnist_5k, rotten_tomatoes), "
                       "an imagefolder directory or a CSV file; default: seeded random images or sample sentences.",
        show_default=False)] = None,
    samples: Annotated[int, typer.Option(help="Examples ONNX Runtime is compared with torch on.")] = 64,
    atol: Annotated[float, typer.Option(help="Largest allowed max-abs logit difference ONNX vs torch.")] = 1e-3,
    min_agreement: Annotated[float, typer.Option(help="Smallest allowed top-1 agreement ONNX vs torch.")] = 0.99,
) -> None:
    """Export MODEL_DIR to ONNX and check ONNX Runtime agrees with torch; exit 2 when it does not."""
    from edgetl.commands.guard import run_guarded

    def go():
        from pydantic import ValidationError

        from edgetl.data.datasets import load_eval_data
        from edgetl.errors import ExportError
        from edgetl.export.config import ExportConfig
        from edgetl.export.onnx import export_onnx
        from edgetl.models.base import load_model

        try:
            config = ExportConfig(opset=opset, parity_samples=samples, parity_atol=atol, min_agreement=min_agreement)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ExportError(f"--{'-'.join(map(str, err['loc']))}: {err['msg']}") from None
        model = load_model(model_dir)
        parity_data = load_eval_data(data, samples) if data else None
        result = export_onnx(model, out, config, data=parity_data)
        p = result.metrics["parity"]
        typer.echo(f"wrote {result.path} (opset {result.metrics['opset']}); parity on {p['samples']} examples: "
                   f"max |logit diff| {p['max_abs_diff']:.2e}, top-1 agreement {p['top1_agreement']:.3f}")

    run_guarded(go)
