"""``gpupool sim replay`` / ``sim converge`` take every option default from the dataclass it fills.

A default written twice drifts: these tests compare each CLI option's default (as typer hands it
to click) with the field of ``SimOptions``, ``SyntheticOptions``, ``AutoscaleOptions`` or
``ConvergeOptions`` it configures, and fail when an option with a field's name is left unchecked.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import typer

from gpupool.cli.sim_cmd import sim_app
from gpupool.core.config import DEFAULT_BURST_HEADROOM, DEFAULT_GRACE, DEFAULT_PREEMPTION_DELAY, BurstHeadroom
from gpupool.sim.options import AutoscaleOptions, ConvergeOptions, SimOptions
from gpupool.sim.traces import SyntheticOptions, format_size_mix, parse_size_mix

# CLI option -> the dataclass field it fills, where the names differ.
RENAMED = {
    "rate": "rate_per_hour",
    "headroom": "headroom_nodes",
    "headroom_max": "headroom_max_nodes",
    "cloud_seed": "seed",
}
# Which dataclasses each command's options fill (the synthetic ``seed`` is SyntheticOptions',
# the cloud's ``cloud_seed`` AutoscaleOptions').
REPLAY_SHARED: dict[type, set[str]] = {
    SimOptions: {"interval", "checkpoint_interval", "grace", "stop_delay", "resume_delay", "nodes_scale"},
    SyntheticOptions: {
        "seed", "tenants", "nodes_per_tenant", "rate", "burstiness", "size_mix", "gang_fraction",
        "duration_median", "duration_sigma", "tenant_skew", "arrivals", "branching", "excitation",
    },
    AutoscaleOptions: {
        "headroom", "headroom_window", "headroom_max", "headroom_fit", "headroom_memory",
        "headroom_series", "headroom_series_min", "headroom_series_window", "headroom_gpus",
        "idle_timeout", "boot_time", "compaction_budget", "cloud_seed", "stockout_rate", "boot_failure_rate",
    },
}  # fmt: skip
CONVERGE_SHARED: dict[type, set[str]] = {
    SimOptions: {"checkpoint_interval"},
    ConvergeOptions: {"queues", "nodes_per_queue", "others_at"},
}
# Options of ``sim replay`` that share a field's name but hold something else: ``--days`` is the
# window of either trace (unset: all of Philly, SyntheticOptions.days of the generator), and
# ``--job-mix`` names a mix (parametric, philly, ...) where the field holds the mix itself.
NOT_FIELDS = {"days", "job_mix"}


def command(name: str) -> Any:
    """The click command typer builds for ``sim <name>`` (typer may bring its own click)."""
    return typer.main.get_command(sim_app).commands[name]  # type: ignore[attr-defined]


def field_default(cls: type, name: str) -> Any:
    f = {x.name: x for x in dataclasses.fields(cls)}[RENAMED.get(name, name)]
    assert f.default is not dataclasses.MISSING, f"{cls.__name__}.{f.name} has no default"
    return f.default


def cli_value(cls: type, name: str, default: Any) -> Any:
    """The CLI default as the dataclass holds it (``--size-mix`` is text, the field a tuple)."""
    return parse_size_mix(default) if (cls, name) == (SyntheticOptions, "size_mix") else default


def check(cmd: Any, shared: dict[type, set[str]]) -> int:
    params = {p.name: p for p in cmd.params if p.param_type_name == "option"}
    checked = 0
    for cls, names in shared.items():
        for name in sorted(names):
            param = params[name]
            want = field_default(cls, name)
            if param.default is None:
                # Left unset so that AutoscaleOptions decides; the help states its default.
                shown = re.search(r"\[default: ([^\]]+)\]", param.help or "")
                assert shown, f"--{name}: no default given and none stated in its help"
                text = ("fit" if want else "no fit") if isinstance(want, bool) else f"{want:g}"
                assert shown.group(1) == text, f"--{name}: help says {shown.group(1)}, {cls.__name__} {text}"
            else:
                got = cli_value(cls, name, param.default)
                assert got == want and type(got) is type(want), (
                    f"--{name} defaults to {param.default!r}, {cls.__name__}.{RENAMED.get(name, name)} "
                    f"to {want!r}"
                )
            checked += 1
    return checked


def test_replay_defaults_are_the_dataclasses() -> None:
    assert check(command("replay"), REPLAY_SHARED) == 34


def test_converge_defaults_are_the_dataclasses() -> None:
    assert check(command("converge"), CONVERGE_SHARED) == 4


def test_no_option_named_like_a_field_goes_unchecked() -> None:
    for name, shared in (("replay", REPLAY_SHARED), ("converge", CONVERGE_SHARED)):
        covered = set().union(*shared.values())
        fields = {f.name for cls in shared for f in dataclasses.fields(cls)} | set(RENAMED)
        for p in command(name).params:
            if p.name in fields and p.name not in NOT_FIELDS:
                assert p.name in covered, f"sim {name} --{p.name}: its default is not compared"


def test_core_defaults_are_imported_not_repeated() -> None:
    assert SimOptions().grace == DEFAULT_GRACE
    assert SimOptions().preemption_delay == DEFAULT_PREEMPTION_DELAY
    assert AutoscaleOptions().grace == SimOptions().grace
    assert {f.name for f in dataclasses.fields(SimOptions)} - {"until", "boot_delay", "interval"} <= {
        f.name for f in dataclasses.fields(AutoscaleOptions)
    }
    for name in ("retry", "stop_delay", "resume_delay", "checkpoint_interval", "preemption_delay"):
        assert getattr(AutoscaleOptions(), name) == getattr(SimOptions(), name), name
    # The gpupool configuration's headroom is the policy a config pool's headroom gets.
    for f in dataclasses.fields(BurstHeadroom):
        name = "headroom_max_nodes" if f.name == "max_nodes" else f"headroom_{f.name}"
        assert getattr(AutoscaleOptions(), name) == getattr(DEFAULT_BURST_HEADROOM, f.name), name


def test_size_mix_text_round_trips() -> None:
    mix = SyntheticOptions().size_mix
    assert format_size_mix(mix) == "1:0.55,2:0.15,4:0.15,8:0.15"
    assert parse_size_mix(format_size_mix(mix)) == mix
