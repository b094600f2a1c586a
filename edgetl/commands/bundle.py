"""`edgetl bundle RUN_DIR --out DIR`: the deployable folder of a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def bundle(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder (holds report.json and manifest.json).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the bundle into (new, empty, or an older bundle).")],
    artifact: Annotated[
        list[str] | None,
        typer.Option("--artifact", "-a", help="ONNX artifact to ship (repeatable; default: one per backend layout).",
                     show_default=False),
    ] = None,
    engines: Annotated[bool, typer.Option("--engines/--no-engines", help="Include TensorRT engines the run built.")] = True,
    sign: Annotated[
        Path | None,
        typer.Option("--sign", help="Ed25519 private key (PEM) to sign manifest.json with, writing manifest.sig; "
                                    "devices load it with Predictor.from_bundle(DIR, public_key=...).",
                     show_default=False),
    ] = None,
) -> None:
    """Write RUN_DIR's deployable files to OUT: ONNX per layout, engines, manifest.json with sha256 of every file."""
    from edgetl.commands.guard import run_guarded

    def go():
        from edgetl.bundle.writer import write_bundle_from_run

        manifest = write_bundle_from_run(run_dir, out, names=artifact or None, engines=engines, sign=sign)
        size = sum(f["size_bytes"] for f in manifest["files"].values())
        for m in manifest["models"]:
            acc = "-" if m.get("accuracy") is None else f"{m['accuracy']:.4f}"
            p50 = "-" if not m.get("latency_ms") else f"{m['latency_ms']['p50']:.3f} ms"
            typer.echo(f"  {m['name']:20s} {m['precision']:5s} layout {m['layout']:12s} accuracy {acc}  p50 {p50}")
        for e in manifest["engines"]:
            typer.echo(f"  {e['name']:20s} engine for {e.get('device')} (TensorRT {e.get('trt_version')})")
        defaults = ", ".join(f"{k}: {v}" for k, v in manifest["defaults"].items())
        signed = " + manifest.sig" if sign else ""
        typer.echo(f"wrote {out} ({len(manifest['files'])} files + manifest.json{signed}, {size / 1e6:.2f} MB; "
                   f"defaults {defaults})")

    run_guarded(go)
