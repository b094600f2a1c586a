"""A ranking as Markdown lines and a PNG, from the plain dict `edgetl rank` writes as rank.json (also the
`model_selection` entry of a run's report.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgetl.transfer.rank import METRIC_TITLES, METRICS


def _num(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _short(name: str, width: int = 24) -> str:
    """A candidate name for a plot label (model folders are long paths: their end tells them apart)."""
    return name if len(name) <= width else "..." + name[-(width - 3):]


def ranking_lines(result: dict[str, Any]) -> list[str]:
    """The score table (best first by `by`), excluded candidates and, after `--verify`, the agreement table."""
    by = result["ranking"]["by"]
    metrics = [m for m in METRICS if any(m in c["scores"] or m in c["skipped"] for c in result["candidates"])]
    verify = result.get("verify") or {}
    acc = verify.get("accuracy") or {}
    order = {name: i for i, name in enumerate(result["ranking"]["order"])}
    rows = sorted(result["candidates"], key=lambda c: order.get(c["name"], len(order)))
    head = ["rank", "candidate", *[METRIC_TITLES[m] + (" *" if m == by else "") for m in metrics],
            "features (s)", "params", "MACs", "p50 ms"] + (["fine-tuned acc."] if acc else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in rows:
        cells = [str(order[c["name"]] + 1) if c["name"] in order else "-", c["name"]]
        cells += [_num(c["scores"].get(m), ".4f") if m in c["scores"] else "n/a" for m in metrics]
        lat = (c.get("latency_ms") or {}).get("p50")
        cells += [f"{c['feature_seconds']:.1f}", _num(c.get("params"), ","),
                  _num(c["macs"] / 1e6 if c.get("macs") else None, ",.0f") + ("M" if c.get("macs") else ""),
                  _num(lat, ".2f")]
        if acc:
            cells.append(_num(acc.get(c["name"]), ".4f"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Ranked by **{METRIC_TITLES[by]}** (*) on {result['samples']} training examples of "
                  f"{result['data']}; latency: eager PyTorch FP32, batch 1."]
    for name, why in result["ranking"].get("excluded", {}).items():
        lines.append(f"- {name} not ranked: {why}")
    skipped: dict[tuple[str, str], list[str]] = {}
    for c in rows:
        for m, why in c["skipped"].items():
            skipped.setdefault((m, why), []).append(c["name"])
    for (m, why), names in skipped.items():
        lines.append(f"- {METRIC_TITLES[m]} n/a for {', '.join(names)}: {why}")
    if verify.get("agreement"):
        lines += ["", "| score | Kendall tau | Spearman | top pick | best model | top pick is best | points behind |",
                  "|---|---|---|---|---|---|---|"]
        for m, a in verify["agreement"].items():
            lines.append(f"| {METRIC_TITLES[m]} | {a['kendall_tau']:.3f} | {a['spearman']:.3f} | {a['top_pick']} | "
                         f"{a['best_model']} | {'yes' if a['top_pick_is_best'] else 'no'} | "
                         f"{a['top_pick_gap_points']:.2f} |")
        if verify.get("cost_share") is not None:
            timing = result["seconds"]["latency"]
            lines += ["", f"Ranking took {result['seconds']['scoring_total']:.1f} s (loading, features, scores"
                          + (f"; latency timing {timing:.1f} s more" if timing else "") + "), fine-tuning every "
                          f"candidate {verify['finetune_seconds_total']:.1f} s: the ranking costs "
                          f"{100 * verify['cost_share']:.1f} % of that."]
    return lines


def ranking_plot(result: dict[str, Any], path: Path) -> Path | None:
    """One panel per score: candidates' scores as bars, or after `--verify` score vs fine-tuned accuracy."""
    metrics = [m for m in METRICS if any(m in c["scores"] for c in result["candidates"])]
    if not metrics:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = (result.get("verify") or {}).get("accuracy") or {}
    agreement = (result.get("verify") or {}).get("agreement") or {}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), dpi=110, squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        scored = [c for c in result["candidates"] if m in c["scores"]]
        if acc:
            for c in scored:
                if c["name"] in acc:
                    ax.scatter(c["scores"][m], acc[c["name"]], s=40)
                    ax.annotate(_short(c["name"]), (c["scores"][m], acc[c["name"]]), fontsize=7,
                                textcoords="offset points", xytext=(4, 3))
            ax.set_xlabel(METRIC_TITLES[m])
            ax.set_ylabel("fine-tuned accuracy")
            tau = agreement.get(m, {}).get("kendall_tau")
            ax.set_title(f"{METRIC_TITLES[m]}" + (f" (tau {tau:.2f})" if tau is not None else ""), fontsize=9)
        else:
            ax.bar(range(len(scored)), [c["scores"][m] for c in scored])
            ax.set_xticks(range(len(scored)), [_short(c["name"]) for c in scored], rotation=45, ha="right",
                          fontsize=7)
            ax.set_title(METRIC_TITLES[m], fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(".tmp-" + path.name)
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path
