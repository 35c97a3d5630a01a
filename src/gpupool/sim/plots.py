"""Charts of simulation runs (matplotlib, Agg backend): per-queue usage against guarantee, wait CDFs.

Functions return matplotlib Figures; ``save`` writes one as PNG. matplotlib is imported lazily
so that running a simulation without charts does not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpupool.sim.metrics import Recorder

_HOUR = 3600.0


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _time_axis(span: float) -> tuple[float, str]:
    if span > 4 * 86400:
        return 86400.0, "days"
    if span > 4 * _HOUR:
        return _HOUR, "hours"
    if span > 600:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _resample(
    times: np.ndarray, values: np.ndarray, t0: float, t1: float, points: int = 1500
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and max of a step function over ``points`` equal buckets of [t0, t1]."""
    if t1 <= t0 or len(times) == 0:
        return np.array([t0]), np.array([0.0]), np.array([0.0])
    edges = np.linspace(t0, t1, points + 1)
    # value in force on each bucket's sub-intervals: integrate the step function exactly
    all_t = np.union1d(times, edges)
    idx = np.searchsorted(times, all_t, side="right") - 1
    vals = np.where(idx >= 0, values[np.clip(idx, 0, None)], 0.0)
    seg_dt = np.diff(all_t)
    seg_v = vals[:-1]
    bucket = np.clip(np.searchsorted(edges, all_t[:-1], side="right") - 1, 0, points - 1)
    area = np.bincount(bucket, weights=seg_v * seg_dt, minlength=points)
    width = np.diff(edges)
    mean = area / width
    peak = np.zeros(points)
    np.maximum.at(peak, bucket, seg_v)
    return edges[:-1], mean, peak


def usage_figure(recorder: Recorder, title: str, end: float | None = None) -> Any:
    """One panel per queue: allocated GPUs (mean per time bucket) and demand, against the guarantee."""
    plt = _plt()
    s = recorder.series
    tenants = list(recorder.tenants)
    n = len(tenants)
    cols = min(3, n) or 1
    rows = math.ceil(n / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.6 * rows), squeeze=False, sharex=True)
    times = np.array(s.times, dtype=float)
    t0 = 0.0
    t1 = end if end is not None else (float(times[-1]) if len(times) else 1.0)
    unit, label = _time_axis(t1 - t0)
    for i, tenant in enumerate(tenants):
        ax = axes[i // cols][i % cols]
        g = recorder.guarantees[tenant]
        x, mean_a, _ = _resample(times, np.array(s.alloc[tenant], dtype=float), t0, t1)
        _, mean_d, _ = _resample(times, np.array(s.demand[tenant], dtype=float), t0, t1)
        ax.fill_between(x / unit, mean_a, step="post", alpha=0.35, color="#3182bd", label="allocated")
        ax.step(x / unit, mean_d, where="post", color="#636363", lw=0.7, label="demand")
        ax.axhline(g, color="#e6550d", lw=1.2, ls="--", label="guaranteed")
        top = max(g * 1.6, float(mean_a.max()) * 1.1 if len(mean_a) else 1.0, 1.0)
        ax.set_ylim(0, top)
        ax.set_title(recorder.tenants[tenant], fontsize=9)
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("GPUs", fontsize=8)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    for ax in axes[-1]:
        ax.set_xlabel(label, fontsize=8)
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def wait_cdf_figure(waits: dict[str, np.ndarray], title: str = "Wait time CDF by mode") -> Any:
    """Empirical CDF of job wait times, one line per mode (log time axis; zero waits at 1 s)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for mode, w in waits.items():
        if len(w) == 0:
            continue
        xs = np.sort(np.maximum(w, 1.0))
        ys = np.arange(1, len(xs) + 1) / len(xs)
        ax.step(xs, ys * 100, where="post", label=f"{mode} (p95 {np.percentile(w, 95):,.0f} s)")
    ax.set_xscale("log")
    ax.set_xlabel("wait (seconds, log; waits under 1 s shown at 1 s)")
    ax.set_ylabel("% of jobs waiting at most x")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def converge_figure(recorder: Recorder, others_at: float, converged_at: float | None, end: float) -> Any:
    """Usage per queue over time (step lines) with guarantees, marking when the others submitted."""
    plt = _plt()
    s = recorder.series
    times = np.array([*s.times, end], dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (tenant, path) in enumerate(recorder.tenants.items()):
        values = np.array(s.alloc[tenant] + s.alloc[tenant][-1:], dtype=float)
        c = colours[i % len(colours)]
        ax.step(times / 60, values, where="post", color=c, label=path)
        ax.axhline(recorder.guarantees[tenant], color=c, lw=0.8, ls=":")
    ax.axvline(others_at / 60, color="#888", lw=1, ls="--")
    ax.text(others_at / 60, ax.get_ylim()[1] * 0.95, " others submit", fontsize=8, color="#555")
    if converged_at is not None:
        ax.axvline(converged_at / 60, color="#31a354", lw=1, ls="--")
        ax.text(converged_at / 60, ax.get_ylim()[1] * 0.85, " all at guarantee", fontsize=8, color="#31a354")
    ax.set_xlabel("minutes")
    ax.set_ylabel("allocated GPUs (dotted: guaranteed)")
    ax.legend(fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    ax.set_title("Convergence to guarantees")
    fig.tight_layout()
    return fig


def save(fig: Any, path: Path) -> Path:
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def mode_waits(results: Sequence[Any]) -> dict[str, np.ndarray]:
    return {r.mode: r.recorder.waits() for r in results}
