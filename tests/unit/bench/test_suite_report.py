"""The suite's Markdown/HTML report shows names and error text as text, never as markup."""

from edgetl.bench.history import History
from edgetl.bench.report import write_suite_report
from edgetl.pipeline.suite import SuiteConfig

SCRIPT = "<script>alert(1)</script>"


def test_names_and_error_text_are_escaped_in_the_html(tmp_path):
    cfg = SuiteConfig(name=SCRIPT, models=[{"name": "m", "path": "m.onnx"}])
    check = {"name": f"mlp{SCRIPT}", "backend": "ort-cpu", "batch": 1, "current_p50": 1.0, "baseline_p50": None,
             "change": None, "noise": None, "cov": 0.01, "samples_per_s": 1000.0, "verdict": "no-history",
             "machine_fp": "abc", "notes": ["<img src=x onerror=alert(2)> | a pipe"]}
    unavailable = [{"model": "m", "backend": "ort-cuda", "status": "unavailable",
                    "reason": f"needs <b>CUDA</b> | {SCRIPT}", "hint": "pip install 'edgetl[gpu]' [x](http://evil)"}]
    hist = History(tmp_path / "h.sqlite")
    md_path, html_path = write_suite_report(cfg, hist, [check], unavailable, tmp_path, "s1")
    hist.close()
    page = html_path.read_text()
    assert "<script" not in page and "<img" not in page and "<b>" not in page and "href=" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "pip install 'edgetl[gpu]'" in page.replace("&#x27;", "'").replace("&#39;", "'")
    # the check stays one table row of 13 cells: the `|` in the error text opened no new cell
    row = next(line for line in md_path.read_text().splitlines() if line.startswith("| mlp"))
    assert row.count(" | ") == 12
