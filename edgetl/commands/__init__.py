"""CLI commands that live outside cli.py. Each module imports only typer and the standard library at its
top (heavy imports inside the function), and is listed in `edgetl.cli.COMMANDS`."""
