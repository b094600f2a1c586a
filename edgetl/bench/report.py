"""Markdown + HTML report of a suite run, with one trend plot (PNG) per model / backend / batch size."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def _md(text: Any) -> str:
    """Text the report did not write (names, error messages, machine strings) as literal Markdown: no tags,
    links or table cells of its own. The HTML renderer also refuses raw HTML."""
    return re.sub(r"([\\`\[\]<>|])", r"\\\1", str(text)).replace("\n", " ")


def trend_plot(series: list[dict[str, Any]], title: str, path: Path) -> Path | None:
    """p50 (line) with the p90 band over history rows; re-runs hollow, confirmed regressions red."""
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = [s for s in series if not s["rerun"]]
    xs = list(range(1, len(first) + 1))
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    ax.plot(xs, [s["p50"] for s in first], "o-", color="#1f77b4", label="p50", markersize=4)
    ax.fill_between(xs, [s["p50"] for s in first], [s["p90"] for s in first], color="#1f77b4", alpha=0.15,
                    label="p50..p90")
    index = {s["id"]: i + 1 for i, s in enumerate(first)}
    last_x = 0
    for s in series:
        if not s["rerun"]:
            last_x = index[s["id"]]
            if s["verdict"] == "regression":
                ax.plot([last_x], [s["p50"]], "o", color="#d62728", markersize=8, label="regression")
        else:
            ax.plot([last_x], [s["p50"]], "o", mfc="none", color="#ff7f0e", markersize=7, label="re-run")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper left")
    ax.set_xlabel("run")
    ax.set_ylabel("latency ms")
    ax.set_title(title, fontsize=9)
    top = max(s["p50"] for s in series)
    ax.set_ylim(0, top * 2.2)  # the p90 band of a noisy run must not flatten the p50 trend
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_suite_report(cfg, hist, checks: list[dict[str, Any]], unavailable: list[dict[str, Any]], out: Path,
                       session: str) -> tuple[Path, Path]:
    from edgetl.bench.fingerprint import environment

    env = environment()
    lines = [f"# Benchmark suite {_md(cfg.name)}", "",
             f"Session `{session}` - {len(checks)} measurement(s), threads {cfg.threads}, "
             f"{cfg.iterations} timed iterations at the latency batch (interleaved), warm-up >= {cfg.warmup_seconds} s.",
             f"Machine: {_md(env['cpu'])} ({_md(', '.join(env['cpu_flags']))}), {env['cpu_count']} CPUs, "
             f"{_md(env['os'])}; "
             f"machine fingerprint `{checks[0]['machine_fp'] if checks else '-'}`.", "",
             f"Regression rule: p50 slower than the median of the last {cfg.regression.window} runs by more than "
             f"{cfg.regression.threshold_pct:g} % AND more than the noise of those runs"
             + (", in raw p50 and relative to a one-thread reference workload timed in the same run" if
                cfg.regression.reference else "") + ", confirmed by a re-run.", "",
             "| model | backend | batch | p50 ms | baseline p50 ms | change | noise | vs reference | CoV | samples/s | accuracy | verdict | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for c in checks:
        base = "-" if c["baseline_p50"] is None else f"{c['baseline_p50']:.3f}"
        change = "-" if c["change"] is None else f"{100 * c['change']:+.1f} %"
        noise = "-" if c["noise"] is None else f"{100 * c['noise']:.1f} %"
        acc = "-" if c.get("accuracy") is None else f"{c['accuracy']:.4f}"
        verdict = c["verdict"] + (f" (re-run {100 * c['rerun_change']:+.1f} %)" if c.get("rerun_change") is not None else "")
        relc = "-" if c.get("relative_change") is None else f"{100 * c['relative_change']:+.1f} %"
        lines.append(f"| {_md(c['name'])} | {_md(c['backend'])} | {c['batch']} | {c['current_p50']:.3f} | {base} | {change} | "
                     f"{noise} | {relc} | {100 * c['cov']:.1f} % | {c['samples_per_s']:.1f} | {acc} | **{verdict}** | "
                     f"{_md('; '.join(c.get('notes') or []))} |")
    if unavailable:
        lines += ["", "## Not measured here", ""]
        lines += [f"- {_md(r['model'])} on {_md(r['backend'])}: {_md(r['status'])}: {_md(r.get('reason'))}. "
                  f"How to get it: {_md(r.get('hint'))}" for r in unavailable]
    lines += ["", "## Trends", ""]
    for c in checks:
        series = hist.series(c["name"], c["backend"], c["batch"], c["machine_fp"])
        png = out / f"trend-{_slug(c['name'])}-{_slug(c['backend'])}-b{c['batch']}.png"
        if trend_plot(series, f"{c['name']} / {c['backend']} / batch {c['batch']} ({len(series)} rows)", png):
            lines += [f"![{_md(c['name'])} {_md(c['backend'])} b{c['batch']}]({png.name})", ""]
    md = "\n".join(lines) + "\n"
    md_path = out / "report.md"
    md_path.write_text(md)
    html_path = out / "report.html"
    html_path.write_text(_to_html(md, cfg.name))
    return md_path, html_path


def _to_html(md: str, title: str) -> str:
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    except ImportError:  # markdown-it comes with rich; keep a readable fallback anyway
        body = "<pre>" + html.escape(md) + "</pre>"
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:640px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")
