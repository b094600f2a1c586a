"""Fuzz recipe loading and `edgetl validate`: mutants of the shipped recipes (keys, types, values, bytes,
nesting, aliases, duplicates, `--set` paths and values, made by edgetl/testing/recipe_fuzz.py) must either
validate or fail with an EdgetlError (exit 2) whose message is short; anything else is a traceback.

Every case runs load + validate in-process; every `--cli-every`-th case also runs through the real
command (`edgetl validate FILE --set ...`, Typer's test runner), which must exit 0 or 2 to match.

    .venv/bin/python benchmarks/fuzz_recipes.py                   # 1,000 cases
    .venv/bin/python benchmarks/fuzz_recipes.py --cases 5000 --seed 7

Prints `N cases: X exit 2, Y ok, 0 tracebacks` and appends it, dated, to benchmarks/results/fuzz_recipes.txt
(--no-save: print only). Exit code 1 when any case gave a traceback or a long message.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "fuzz_recipes.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="How many mutants to try (default 1000).")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0).")
    parser.add_argument("--cli-every", type=int, default=10, help="Run every Nth case through the CLI too.")
    parser.add_argument("--no-save", action="store_true", help=f"Do not append the result line to {RESULT.name}.")
    args = parser.parse_args()

    import logging
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from typer.testing import CliRunner

    from edgetl.cli import app
    from edgetl.testing.recipe_fuzz import check_case, recipe_cases, shipped_recipes

    logging.disable(logging.WARNING)  # the trust_remote_code warning and INFO lines, per case (the CLI resets levels)
    bases = shipped_recipes(ROOT / "recipes")
    counts: Counter[str] = Counter()
    failures: list[str] = []
    runner = CliRunner()
    work = Path(tempfile.mkdtemp(prefix="edgetl-fuzz-"))

    @seed(args.seed)
    @settings(max_examples=args.cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(recipe_cases(bases))
    def run(case) -> None:
        n = counts["ok"] + counts["error"] + counts["traceback"]
        try:
            outcome = check_case(case, work)
        except Exception:
            outcome = "traceback"
            failures.append(f"{case.base} {case.mutation}\n{traceback.format_exc(limit=-3)}")
        counts[outcome] += 1
        if outcome != "traceback" and args.cli_every and n % args.cli_every == 0:
            path = work / "cli.yaml"
            path.write_bytes(case.content)
            cli_args = ["validate", str(path)] + [a for o in case.overrides for a in ("--set", o)]
            result = runner.invoke(app, cli_args)
            expected = 0 if outcome == "ok" else 2
            counts["cli"] += 1
            if result.exit_code != expected or "Traceback" in result.output:
                counts["cli_mismatch"] += 1
                failures.append(f"{case.base} {case.mutation}: CLI exit {result.exit_code}, expected {expected}\n"
                                f"{result.output[-2000:]}")

    run()
    total = counts["ok"] + counts["error"] + counts["traceback"]
    line = f"{total} cases: {counts['error']} exit 2, {counts['ok']} ok, {counts['traceback']} tracebacks"
    for failure in failures[:5]:
        print(failure, file=sys.stderr)
    print(line)
    print(f"({counts['cli']} of them also through `edgetl validate`, {counts['cli_mismatch']} mismatches)")
    if not args.no_save:
        with RESULT.open("a") as f:
            f.write(f"{dt.date.today().isoformat()}  seed {args.seed}: {line} "
                    f"({counts['cli']} also via the CLI, {counts['cli_mismatch']} mismatches)\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
