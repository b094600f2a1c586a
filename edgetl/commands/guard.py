"""How every command runs its work: an EdgetlError prints one clear message and exits with its code (2: bad
input, 3: a stage failed); Ctrl-C exits 130; anything else is a bug and keeps its traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from edgetl.errors import EdgetlError


def err_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def run_guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except EdgetlError as exc:
        from rich.markup import escape  # messages hold brackets ('edgetl[trt]') that are not markup

        err_console().print(f"[bold red]error:[/] {escape(exc.render())}", markup=True, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console().print("interrupted; finished stages are kept and will be reused on the next run")
        raise typer.Exit(130) from None
