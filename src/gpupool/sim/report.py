"""What ``gpupool sim`` writes besides its tables: JSON contracts, PNG charts and HTML reports.

The CLI (``gpupool.cli.sim_cmd``) runs the experiments and prints; the documents are built
here, from the results of ``sim.replay``, ``sim.autoscale`` and ``sim.converge``:

* ``contract`` / ``autoscale_json``: the JSON objects ``--json`` prints;
* ``replay_charts`` / ``autoscale_charts`` / ``converge_charts`` and ``write_pngs``: ``--plot``;
* ``replay_report`` / ``autoscale_report`` / ``converge_report``: ``--report`` (one HTML file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any


def write_pngs(folder: Path, charts: list[tuple[str, bytes]]) -> None:
    """Write each (file name, PNG bytes) chart into ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in charts:
        (folder / name).write_bytes(png)


def replay_charts(results: list[Any]) -> list[tuple[str, bytes]]:
    """(file name, PNG bytes): usage per queue for each mode, and the wait CDF of all modes."""
    from gpupool.reporting import figure_png
    from gpupool.sim.plots import mode_waits, usage_figure, wait_cdf_figure

    charts = [
        (
            f"usage_{r.mode}.png",
            figure_png(usage_figure(r.recorder, f"{r.mode}: GPUs allocated per queue vs guaranteed")),
        )
        for r in results
    ]
    charts.append(("wait_cdf.png", figure_png(wait_cdf_figure(mode_waits(results)))))
    return charts


def replay_report(
    path: Path, tr: Any, results: list[Any], charts: list[tuple[str, bytes]], command: str
) -> None:
    """The HTML report of ``sim replay`` in one or more modes: key figures, per-queue tables,
    charts and the configuration."""
    from gpupool.reporting import HtmlReport

    rep = HtmlReport(f"gpupool sim replay: {tr.name}", subtitle=command)
    figures = [r.figures for r in results]
    for f in figures:
        rep.key_figures(
            {
                "GPU utilisation %": f["gpu_utilization_pct"],
                "wait p50 (s)": f["wait_s_p50"],
                "wait p95 (s)": f["wait_s_p95"],
                "JCT mean (s)": f["jct_s_mean"],
                "preemptions": f["preemptions"],
                "lost GPU-hours": f["lost_gpu_hours"],
                "guarantee attainment %": f["guarantee_attainment_pct"],
            },
            title=f"Mode {f['mode']}",
        )
    rep.table(
        "Modes side by side",
        ["figure", *(f["mode"] for f in figures)],
        [
            [k, *(f.get(k) for f in figures)]
            for k in (
                "jobs",
                "gpu_utilization_pct",
                "wait_s_p50",
                "wait_s_p95",
                "jct_s_mean",
                "preemptions",
                "lost_gpu_hours",
                "guarantee_attainment_pct",
                "cluster_gpus",
                "sim_seconds",
                "sim_seconds_per_wall_second",
                "seconds",
            )
        ],
    )
    for f in figures:
        cols = [
            "queue",
            "guaranteed GPUs",
            "jobs",
            "wait p50 s",
            "wait p95 s",
            "JCT mean s",
            "GPU-hours",
            "preemptions",
            "lost GPU-h",
            "attainment %",
        ]
        rows = [
            [
                q,
                v["guaranteed_gpus"],
                v["jobs"],
                v["wait_s_p50"],
                v["wait_s_p95"],
                v["jct_s_mean"],
                v["gpu_hours"],
                v["preemptions"],
                v["lost_gpu_hours"],
                v["guarantee_attainment_pct"],
            ]
            for q, v in f["per_queue"].items()
        ]
        rep.table(f"Per queue: {f['mode']}", cols, rows)
    for name, fig in charts:
        rep.figure(name.removesuffix(".png").replace("_", " "), fig)
    rep.config(
        "Configuration",
        {
            "trace": tr.name,
            "source": tr.source,
            "epoch": tr.epoch,
            "jobs": len(tr.jobs),
            "tenants (nodes)": tr.tenants,
            "gpus_per_node": tr.gpus_per_node,
            "left out": {
                "bad_rows": tr.bad_rows,
                "unknown_tenant_jobs": tr.unknown_tenant_jobs,
                "too_big_jobs": tr.too_big_jobs,
            },
            "runs": [r.config for r in results],
        },
    )
    rep.write(path)


def contract(figures: dict[str, Any], tr: Any) -> dict[str, Any]:
    """The JSON of benchmarks.md section 3 (its keys first), plus what was left out of the trace."""
    keys = (
        "mode",
        "jobs",
        "gpu_utilization_pct",
        "wait_s_p50",
        "wait_s_p95",
        "jct_s_mean",
        "preemptions",
        "lost_gpu_hours",
        "guarantee_attainment_pct",
        "per_queue",
        "sim_seconds_per_wall_second",
        "seconds",
    )
    out = {k: figures.get(k) for k in keys}
    for k, v in figures.items():
        if k not in out:
            out[k] = v
    out["left_out"] = {
        "bad_rows": tr.bad_rows,
        "unknown_tenant_jobs": tr.unknown_tenant_jobs,
        "too_big_jobs": tr.too_big_jobs,
    }
    return out


def autoscale_json(tr: Any, opts: Any, results: list[Any], goals: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON of ``sim replay --autoscale`` on one trace: the targets, each configuration's
    figures, the options and what was left out of the trace."""
    from gpupool.sim.autoscale import target_fields

    configs = [r.figures for r in results]
    return {
        "trace": tr.name,
        **target_fields(goals),
        "configs": configs,
        "targets": goals,
        "seconds": round(sum(f["seconds"] for f in configs), 3),
        "options": asdict(opts),
        "window_s": [0.0, max(j.arrival for j in tr.jobs)],
        "source": tr.source,
        "left_out": {
            "bad_rows": tr.bad_rows,
            "unknown_tenant_jobs": tr.unknown_tenant_jobs,
            "too_big_jobs": tr.too_big_jobs,
            "over_quota_jobs": results[0].settings["over_quota_jobs"],
        },
    }


def autoscale_charts(results: list[Any]) -> list[tuple[str, bytes]]:
    """(file name, PNG bytes): GPUs provisioned against used, for each configuration."""
    from gpupool.reporting import figure_png
    from gpupool.sim.autoscale import provisioning_figure

    return [("autoscale.png", figure_png(provisioning_figure(results)))]


def autoscale_report(
    path: Path,
    tr: Any,
    opts: Any,
    results: list[Any],
    goals: dict[str, Any] | None,
    charts: list[tuple[str, bytes]],
    rows: Sequence[tuple[str, str]],
    command: str,
) -> None:
    """The HTML report of ``sim replay --autoscale``: the configurations side by side (``rows``:
    label and figure key), the targets, the chart and the configuration."""
    from gpupool.reporting import HtmlReport
    from gpupool.sim.autoscale import LABELS

    configs = [r.figures for r in results]
    rep = HtmlReport(f"gpupool sim replay --autoscale: {tr.name}", subtitle=command)
    rep.table(
        "Configurations side by side (window: 0 to the last arrival)",
        ["figure", *(f["name"] for f in configs)],
        [[label, *(f.get(k) for f in configs)] for label, k in rows],
    )
    if goals is not None:
        t1, t2 = goals["vs_no_headroom"], goals["vs_ray_like"]
        rep.table(
            "Targets",
            ["target", "figures", "met"],
            [
                [
                    t1["target"],
                    f"p95 {t1['p95_ratio']}x, GPU-hours {t1['gpu_hours_ratio']}x",
                    t1["met"],
                ],
                [t2["target"], f"idle {t2['idle_ratio']}x, p95 no worse: {t2['p95_ok']}", t2["met"]],
            ],
        )
    for _name, png in charts:
        rep.figure("Provisioned vs used GPUs", png)
    rep.config(
        "Configuration",
        {
            "configurations": LABELS,
            "options": asdict(opts),
            "trace": tr.name,
            "source": tr.source,
            "jobs": len(tr.jobs),
            "runs": [r.settings for r in results],
            "whole run (until the last job ended)": {f["name"]: f["whole_run"] for f in configs},
        },
    )
    rep.write(path)


def converge_charts(runs: list[tuple[dict[str, Any], Any]], others_at: float) -> list[tuple[str, bytes]]:
    """(file name, PNG bytes): each mode's usage per queue, with when the others submitted and
    when every queue held its guarantee."""
    from gpupool.reporting import figure_png
    from gpupool.sim.plots import converge_figure

    charts: list[tuple[str, bytes]] = []
    for f, r in runs:
        done = f["converge_s"] + others_at if f["converge_s"] is not None else None
        fig = converge_figure(r.recorder, others_at, done, r.stats.end)
        charts.append((f"converge_{f['mode']}.png", figure_png(fig)))
    return charts


def converge_report(
    path: Path,
    opts: Any,
    runs: list[tuple[dict[str, Any], Any]],
    charts: list[tuple[str, bytes]],
    command: str,
) -> None:
    """The HTML report of ``sim converge``: each mode's key figures and per-queue seconds."""
    from gpupool.reporting import HtmlReport

    rep = HtmlReport("gpupool sim converge", subtitle=command)
    for f, _ in runs:
        rep.key_figures(
            {
                "converge (s)": f["converge_s"],
                "preemptions": f["preemptions"],
                "lost GPU-hours": f["lost_gpu_hours"],
            },
            title=f"Mode {f['mode']}",
        )
        rep.table(
            f"Seconds until each queue held its guarantee: {f['mode']}",
            ["queue", "seconds after the others submitted"],
            [[q, s] for q, s in f["per_queue_s"].items()],
        )
    for name, fig in charts:
        rep.figure(name.removesuffix(".png").replace("_", " "), fig)
    rep.config("Configuration", {"options": opts.__repr__(), "runs": [r.config for _, r in runs]})
    rep.write(path)
