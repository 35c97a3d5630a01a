"""``gpupool scenario run``: run scheduling scenario files against the real core."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from gpupool.scenario import ScenarioError, load_scenario, run_scenario

scenario_app = typer.Typer(help="Scheduling scenarios (docs/scenarios.md).", no_args_is_help=True)


@scenario_app.command("run")
def run(
    files: list[Path] = typer.Argument(..., help="Scenario files (YAML)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file, one per line."),
) -> None:
    """Run each scenario file; exit 0 if all pass, 1 if any fails, 2 if a file is invalid."""
    console = Console(highlight=False)
    # One line per message whatever the terminal's width (a long path must not wrap it).
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    invalid = failed = passed = 0
    for path in files:
        try:
            sc = load_scenario(path)
        except ScenarioError as exc:
            invalid += 1
            if as_json:
                print(
                    json.dumps(
                        {
                            "name": Path(path).stem,
                            "file": str(path),
                            "passed": False,
                            "error": str(exc),
                            "failures": [str(exc)],
                            "placed": {},
                            "preempted": [],
                            "pending": [],
                            "rejected": {},
                            "queues": {},
                            "states": {},
                        }
                    )
                )
            else:
                err.print(f"[red]INVALID[/red] {exc}")
                err.print("  Hint: the format is described in docs/scenarios.md")
            continue
        result = run_scenario(sc)
        if result.passed:
            passed += 1
        else:
            failed += 1
        if as_json:
            print(json.dumps(result.to_json()))
        else:
            mark = "[green]PASS[/green]" if result.passed else "[red]FAIL[/red]"
            console.print(f"{mark} {result.name} ({result.file})")
            for f in result.failures:
                console.print(f"    {f}")
    if not as_json:
        console.print(f"{passed} passed, {failed} failed, {invalid} invalid")
    raise typer.Exit(2 if invalid else 1 if failed else 0)
