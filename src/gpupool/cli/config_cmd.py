"""``gpupool config ...``: check a queue configuration."""

from __future__ import annotations

import typer

config_app = typer.Typer(help="Queue configuration (YuniKorn queues.yaml).", no_args_is_help=True)
