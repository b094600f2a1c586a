"""Human-readable report: a Markdown table per run and an accuracy-vs-latency PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(v: Any, spec: str = ".4f", none: str = "-") -> str:
    if v is None:
        return none
    return format(v, spec)


def render_markdown(report: dict[str, Any], manifest: dict[str, Any]) -> str:
    env = manifest["environment"]
    lines = [f"# edgetl report: {report['name']}", ""]
    lines.append(f"Created {report['created']} on {env['cpu']} ({env['cpu_count']} cores; flags {', '.join(env['cpu_flags']) or 'n/a'}), "
                 f"{env['os']}, Python {env['python']}, onnxruntime {env['libraries'].get('onnxruntime', '-')}, "
                 f"torch {env['libraries'].get('torch', '-')}.")
    lines.append("")
    lines.append(f"Baseline: **{report['baseline']}**. Final: **{report['final']}**.")
    lines.append("")
    lines.append("| artifact | format | precision | size (MB) | params | accuracy | p50 ms | p90 ms | p99 ms | CoV | speed-up | size ratio |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for a in report["artifacts"]:
        lat = a.get("latency_ms") or {}
        lines.append(
            f"| {a['name']} | {a['format']} | {a['precision']}{' (' + a['layout'] + ')' if a.get('layout') else ''} | "
            f"{a['size_bytes'] / 1e6:.2f} | {_fmt(a.get('params'), ',')} | {_fmt(a.get('accuracy'))} | "
            f"{_fmt(lat.get('p50'), '.3f')} | {_fmt(lat.get('p90'), '.3f')} | {_fmt(lat.get('p99'), '.3f')} | "
            f"{_fmt(lat.get('cov'), '.1%')} | {_fmt(a.get('speedup_vs_baseline'), '.2f')}{'x' if a.get('speedup_vs_baseline') else ''} | "
            f"{_fmt(a.get('size_ratio_vs_baseline'), '.2f')} |"
        )
    measured = [a for a in report["artifacts"] if a.get("latency_ms")]
    if measured:
        a = measured[0]
        on = "the adaptation target's eval split" if a.get("eval_data") == "target" else "the eval split"
        lines += ["", f"Latency: {a.get('latency_backend')}, batch {a.get('batch_size')}, {a.get('threads')} threads, "
                      f"interleaved timing, n={a['latency_ms']['n']} per artifact. Accuracy: each file run on {on}."]
    noisy = [a["name"] for a in measured if a["latency_ms"].get("noisy")]
    if noisy:
        lines.append(f"**Noisy timings** (CoV above 10 %): {', '.join(noisy)}; compare ratios, not absolute times.")
    if report["targets"]:
        lines += ["", "## Targets", "", "| target | limit | value | result |", "|---|---|---|---|"]
        for t in report["targets"]:
            result = "n/a (not measured)" if t["passed"] is None else ("pass" if t["passed"] else "**FAIL**")
            lines.append(f"| {t['target']} | {t['limit']} | {_fmt(t['value'])} | {result} |")
    if report.get("model_selection"):  # source: auto: the candidate ranking that chose the source model
        from edgetl.transfer.report import ranking_lines

        sel = report["model_selection"]
        lines += ["", f"## Source model: {sel['ranking']['chosen']} (source: auto)", "", *ranking_lines(sel)]
    lines += _compression_lines(report)
    lines += ["", "## Stages", "", "| # | stage | status | seconds |", "|---|---|---|---|"]
    for s in report["stages"]:
        lines.append(f"| {s['index']} | {s['type']} | {s['status']} | {s['seconds']:.1f} |")
    from edgetl.quant.report import quant_sections  # QAT parity / sensitivity / fallback tables (additive)

    lines += quant_sections(report)
    if report.get("plot"):
        lines += ["", f"![accuracy vs latency]({report['plot']})"]
    return "\n".join(lines) + "\n"


def render_plot(report: dict[str, Any], path: Path) -> Path | None:
    points = [a for a in report["artifacts"] if a.get("latency_ms") and a.get("accuracy") is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for a in points:
        marker = "o" if a["precision"] == "fp32" else "s"
        ax.scatter(a["latency_ms"]["p50"], a["accuracy"], marker=marker, s=60)
        ax.annotate(f"{a['name']} ({a['precision']})", (a["latency_ms"]["p50"], a["accuracy"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("p50 latency (ms, batch 1)")
    ax.set_ylabel("accuracy (eval split)")
    ax.set_title(f"{report['name']}: accuracy vs latency")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(".tmp-" + path.name)
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def _compression_lines(report: dict[str, Any]) -> list[str]:
    """Before/after of prune and distill stages (from their stage metrics)."""
    lines: list[str] = []
    for s in report.get("stages", []):
        m = s.get("metrics") or {}
        if s["type"] == "prune" and "before" in m:
            b, a = m["before"], m["after"]
            lines += ["", f"## Pruning (stage {s['index']})", "",
                      "| | MACs (M) | params (M) | accuracy | ORT p50 ms |", "|---|---|---|---|---|",
                      f"| before | {b['macs'] / 1e6:.1f} | {b['params'] / 1e6:.3f} | {_fmt(b.get('accuracy'))} | "
                      f"{_fmt(b.get('latency_p50_ms'), '.3f')} |",
                      f"| after pruning + recovery | {a['macs'] / 1e6:.1f} | {a['params'] / 1e6:.3f} | "
                      f"{_fmt(a.get('accuracy'))} (right after pruning {_fmt(a.get('accuracy_after_pruning'))}) | "
                      f"{_fmt(a.get('latency_p50_ms'), '.3f')} |",
                      "", f"Budget {m['budget']['kind']} <= {m['budget']['target']}: "
                          f"{'met' if m['budget_met'] else '**not met**'} (reached {m['budget']['reached']:.4g}). "
                          f"{len(m.get('widths_changed') or {})} layers changed width (see report.json stages[].metrics)."]
        elif s["type"] == "finetune" and "adapt" in m:
            lines += _adapt_lines(s["index"], m["adapt"])
        elif s["type"] == "distill" and "student" in m:
            t, st = m["teacher"], m["student"]
            lines += ["", f"## Distillation (stage {s['index']}, student: {st['kind']})", "",
                      "| | MACs (M) | params (M) | accuracy |", "|---|---|---|---|",
                      f"| teacher {t['name']} | {t['macs'] / 1e6:.1f} | {t['params'] / 1e6:.3f} | {_fmt(t.get('accuracy'))} |",
                      f"| student | {st['macs'] / 1e6:.1f} | {st['params'] / 1e6:.3f} | {_fmt(st.get('accuracy'))} |"]
    return lines


def _adapt_lines(index: int, a: dict[str, Any]) -> list[str]:
    """Source-only vs adapted accuracy of a finetune stage with `adapt:`, on the target and on the source."""
    base = a.get("source_only") or {}
    how = a["method"] + (f", weight {a['weight']:g} on {a['layer']}" if "weight" in a else "")
    lines = ["", f"## Domain adaptation (stage {index}: {how})", "",
             f"Target: {a['target']}, {a['target_inputs']} unlabelled inputs, "
             f"{a['target_eval_examples']} labelled eval examples.", "",
             "| | target accuracy | source accuracy |", "|---|---|---|"]
    if base:
        lines.append(f"| source-only | {_fmt(base.get('target_accuracy'))} | {_fmt(base.get('source_accuracy'))} |")
    lines.append(f"| adapted | {_fmt(a.get('target_accuracy'))} | {_fmt(a.get('source_accuracy'))} |")
    if a.get("target_gain") is not None:
        lines += ["", f"Gain on the target: {a['target_gain'] * 100:+.1f} points."]
    return lines
