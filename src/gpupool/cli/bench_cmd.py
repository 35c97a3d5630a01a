"""``gpupool bench ...``: benchmark commands."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
