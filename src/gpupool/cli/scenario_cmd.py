"""``gpupool scenario run``: run scheduling scenario files against the real core."""

from __future__ import annotations

import typer

scenario_app = typer.Typer(help="Scheduling scenarios.", no_args_is_help=True)
