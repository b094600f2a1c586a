"""CLI commands that live outside cli.py. Each module imports only typer and the standard library at its
top (heavy imports inside the function), and is listed in `edgetl.cli.COMMANDS`; `guard.run_guarded` runs
each command's work (and cli.py's) so an EdgetlError becomes one message and an exit code."""
