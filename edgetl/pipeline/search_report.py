"""search.md and search.png of `edgetl search`: every trial on the accuracy / latency plane, the front, the
chosen trial and its full-size re-run, the knobs' importances."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_search_report(summary: dict[str, Any], out: Path) -> None:
    done = [r for r in summary["trials"] if "p50_ms" in r]
    lines = [f"# Search: {summary['study']}", "",
             f"Objective: {summary['objective']}. Trials: " + ", ".join(
                 f"{n} {s.lower()}" for s, n in summary["counts"].items() if n), ""]
    chosen, best = summary.get("chosen"), summary.get("best")
    if chosen:
        lines += [f"Chosen: trial {chosen['number']} ({' '.join(chosen['sets'])}): p50 {chosen['p50_ms']:.3f} ms, "
                  f"accuracy {_fmt(chosen.get('accuracy'))}, {chosen['size_mb']} MB."]
        if summary.get("chosen_by"):
            lines += [f"Chosen by {summary['chosen_by']}."]
    else:
        lines += ["No finished trial met the recipe's targets."]
    if best:
        lines += [f"Re-run without the trials-only overrides ({best['run']}): p50 {best['p50_ms']:.3f} ms, accuracy "
                  f"{_fmt(best.get('accuracy'))}, {best['size_mb']} MB, targets "
                  f"{'met' if best['targets_passed'] else 'missed'}."]
    comparison = (summary.get("comparison") or {}).get("points")
    if comparison:
        lines += ["", f"Side by side ({summary['comparison']['measured']}, {summary['comparison']['eval_samples']} "
                      "examples):", "", "| file | p50 ms | speed-up vs FP32 | accuracy | MB | smaller than FP32 |",
                  "|---|---:|---:|---:|---:|---:|"]
        names = {"fp32": "FP32 baseline (ONNX Runtime)", "edgetl": "chosen trial, re-run (edgetl)",
                 "ort-ptq-careful": f"careful ONNX Runtime PTQ ({summary['comparison']['peer']['calibration']} "
                                    "calibration, per-channel, QUInt8)"}
        for key, p in comparison.items():
            lines.append(f"| {names.get(key, key)} | {p['p50_ms']:.3f} | {p['speedup_vs_fp32']:.2f}x | "
                         f"{_fmt(p.get('accuracy'))} | {p['size_mb']} | {p['smaller_than_fp32']:.2f}x |")
    lines += ["", "| trial | knobs | p50 ms | p50 ms side by side | accuracy | MB | targets | front |",
              "|---:|---|---:|---:|---:|---:|---|---|"]
    for r in summary["trials"]:
        if "p50_ms" in r:
            side = f"{r['p50_ms_interleaved']:.3f}" if "p50_ms_interleaved" in r else ""
            lines.append(f"| {r['number']} | {' '.join(r['sets'])} | {r['p50_ms']:.3f} | {side} | "
                         f"{_fmt(r.get('accuracy'))} | "
                         f"{r['size_mb']} | {'met' if r['targets_passed'] else 'missed'} | "
                         f"{'yes' if r.get('on_front') else ''} |")
        else:
            reason = (r.get("error") or r.get("pruned") or r["state"].lower()).splitlines()[0][:160]
            lines.append(f"| {r['number']} | {' '.join(r['sets'])} | | | | | {reason} | |")
    if summary["importances"]:
        lines += ["", "Importance of each knob (Optuna, fANOVA): " + ", ".join(
            f"{k} {v:.2f}" for k, v in summary["importances"].items())]
    if done:
        _plot(done, chosen, out / "search.png", comparison)
        lines += ["", "![accuracy vs latency](search.png)"]
    (out / "search.md").write_text("\n".join(lines) + "\n")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _plot(done: list[dict[str, Any]], chosen: dict[str, Any] | None, path: Path,
          comparison: dict[str, Any] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ok = [r for r in done if r["targets_passed"] and r.get("accuracy") is not None]
    miss = [r for r in done if not r["targets_passed"] and r.get("accuracy") is not None]
    ax.scatter([r["p50_ms"] for r in ok], [r["accuracy"] for r in ok], label="trials meeting the targets")
    ax.scatter([r["p50_ms"] for r in miss], [r["accuracy"] for r in miss], marker="x", label="missing a target")
    front = sorted((r for r in done if r.get("on_front") and r.get("accuracy") is not None), key=lambda r: r["p50_ms"])
    if front:
        ax.step([r["p50_ms"] for r in front], [r["accuracy"] for r in front], where="post", label="front")
    if chosen and chosen.get("accuracy") is not None:
        ax.scatter([chosen["p50_ms"]], [chosen["accuracy"]], s=120, facecolors="none", edgecolors="k", label="chosen")
    marks = {"fp32": ("s", "FP32 baseline"), "edgetl": ("*", "chosen, re-run"), "ort-ptq-careful": ("D", "careful ORT PTQ")}
    for key, p in (comparison or {}).items():
        if p.get("accuracy") is not None:
            ax.scatter([p["p50_ms"]], [p["accuracy"]], marker=marks[key][0], s=70,
                       label=f"{marks[key][1]} (side by side)")
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
