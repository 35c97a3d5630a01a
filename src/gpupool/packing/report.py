"""A self-contained HTML page for one ``gpupool bench pack`` run: the configuration, the figures
per seed, and an inline SVG chart of allocated GPU percent against arrived GPU demand."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpupool.packing.experiment import PackResult

_WIDTH, _HEIGHT = 720, 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 20, 20, 50
_SEED_COLOURS = ("#9ecae1", "#a1d99b", "#fdae6b", "#bcbddc", "#fc9272", "#c7e9c0", "#d9d9d9", "#fdd0a2")


def curve(arrived_pct: np.ndarray, alloc_pct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean allocated percent per integer arrived percent (rounded), for the buckets present."""
    bucket = np.round(arrived_pct).astype(np.int64)
    xs = np.unique(bucket)
    ys = np.array([alloc_pct[bucket == x].mean() for x in xs])
    return xs, ys


def mean_curve(result: PackResult) -> tuple[np.ndarray, np.ndarray]:
    """The per-seed curves averaged over the seeds that reach each arrived percent."""
    sums: dict[int, list[float]] = {}
    for seed in result.per_seed:
        for x, y in zip(*curve(seed.arrived_pct, seed.alloc_pct), strict=True):
            sums.setdefault(int(x), []).append(float(y))
    xs = np.array(sorted(sums))
    return xs, np.array([np.mean(sums[int(x)]) for x in xs])


@dataclass(frozen=True)
class _Frame:
    """Axis ranges of a chart, and the mapping from percents to SVG coordinates."""

    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float

    def x(self, value: float) -> float:
        return _LEFT + (_WIDTH - _LEFT - _RIGHT) * (value - self.x_lo) / (self.x_hi - self.x_lo)

    def y(self, value: float) -> float:
        return _TOP + (_HEIGHT - _TOP - _BOTTOM) * (1 - (value - self.y_lo) / (self.y_hi - self.y_lo))


def _polyline(
    frame: _Frame, clip: str, xs: Sequence[float], ys: Sequence[float], colour: str, width: float
) -> str:
    points = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" clip-path="url(#{clip})" '
        f'points="{points}"/>'
    )


def svg_chart(result: PackResult, *, zoom: bool = False) -> str:
    """Allocated % (y) against arrived % (x): one thin line per seed, the mean in bold, and the
    diagonal (everything that arrived is allocated). ``zoom``: only allocated 80-100%."""
    x_max = max(130.0, *(float(s.arrived_pct.max(initial=0)) for s in result.per_seed))
    x_max = float(np.ceil(x_max / 10) * 10)
    frame = _Frame(60.0, x_max, 80.0, 100.0) if zoom else _Frame(0.0, x_max, 0.0, 100.0)
    clip = "clip-zoom" if zoom else "clip-full"
    left, right, top, bottom = (
        frame.x(frame.x_lo),
        frame.x(frame.x_hi),
        frame.y(frame.y_hi),
        frame.y(frame.y_lo),
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="allocated versus arrived GPU percent">',
        f'<defs><clipPath id="{clip}"><rect x="{left}" y="{top}" width="{right - left}" '
        f'height="{bottom - top}"/></clipPath></defs>',
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="#fff" stroke="#999"/>',
    ]
    for tick in range(int(frame.x_lo), int(frame.x_hi) + 1, 10):
        x = frame.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 18}" font-size="11" text-anchor="middle">{tick}</text>')
    y_step = 2 if zoom else 10
    for tick in range(int(frame.y_lo), int(frame.y_hi) + 1, y_step):
        y = frame.y(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tick}</text>')
    parts.append(_polyline(frame, clip, [0, 100], [0, 100], "#bbb", 1))
    for i, seed in enumerate(result.per_seed):
        xs, ys = curve(seed.arrived_pct, seed.alloc_pct)
        parts.append(
            _polyline(frame, clip, xs.tolist(), ys.tolist(), _SEED_COLOURS[i % len(_SEED_COLOURS)], 1)
        )
    xs, ys = mean_curve(result)
    parts.append(_polyline(frame, clip, xs.tolist(), ys.tolist(), "#08519c", 2.5))
    for point in (100, 130):
        x = frame.x(point)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" '
            'stroke="#d62728" stroke-dasharray="4 3"/>'
        )
    parts.append(
        f'<text x="{(left + right) / 2}" y="{_HEIGHT - 10}" font-size="12" text-anchor="middle">'
        "arrived GPU demand (% of capacity)</text>"
    )
    middle = (top + bottom) / 2
    parts.append(
        f'<text x="14" y="{middle}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle})">allocated GPUs (%)</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _script_json(payload: object) -> str:
    """JSON safe to embed in a <script> element (whose text is not HTML-unescaped)."""
    return json.dumps(payload).replace("</", "<\\/")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def html_report(result: PackResult, *, command: str = "", generated: str = "") -> str:
    """The whole page as a string (no external resources)."""
    esc = html.escape
    rows = "\n".join(
        f"<tr><td>{s.seed}</td><td>{_fmt(s.alloc_pct_at_100)}</td><td>{_fmt(s.alloc_pct_at_130)}</td>"
        f"<td>{s.failed_pods}</td><td>{s.pods}</td><td>{s.seconds:.2f}</td></tr>"
        for s in result.per_seed
    )
    config = {
        "policy": result.policy,
        "nodes_file": result.nodes_file,
        "pods_file": result.pods_file,
        "seeds": list(result.seeds),
        "ratio": result.ratio,
    }
    if generated:
        config["generated"] = generated
    if command:
        config["command"] = command
    config_rows = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in config.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>gpupool bench pack: {esc(result.policy)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }}
th {{ background: #f3f3f3; text-align: left; }}
.figures td {{ font-size: 1.4em; font-weight: bold; }}
</style></head><body>
<h1>Packing quality: <code>{esc(result.policy)}</code></h1>
<p>Alibaba GPU trace v2023 (openb), the experiment of Weng et al., "Beware of Fragmentation",
USENIX ATC'23: pods scheduled one by one in a seeded random order, inflated to
{result.ratio:g} x the GPU capacity; allocated GPUs as a percent of capacity when the arrived GPU
demand reaches 100% and 130% of capacity (mean over seeds).</p>
<table class="figures"><tr><th>allocated at 100% arrived</th><th>allocated at 130% arrived</th>
<th>seconds</th></tr>
<tr><td>{_fmt(result.alloc_pct_at_100)}</td><td>{_fmt(result.alloc_pct_at_130)}</td>
<td>{result.seconds:.1f}</td></tr></table>
<h2>Allocated versus arrived</h2>
{svg_chart(result)}
<p>Thin lines: one per seed; bold: their mean; grey: the diagonal; dashed: the reported points.
The same, allocated 80-100% only:</p>
{svg_chart(result, zoom=True)}
<h2>Per seed</h2>
<table><tr><th>seed</th><th>alloc % at 100</th><th>alloc % at 130</th><th>failed pods</th>
<th>pods</th><th>seconds</th></tr>
{rows}
</table>
<h2>Configuration</h2>
<table>{config_rows}</table>
<script type="application/json" id="result">{_script_json(result.to_json())}</script>
</body></html>
"""
