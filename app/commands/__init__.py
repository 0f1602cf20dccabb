"""Typer sub-apps of the `orderflow` command line, one module per area."""
