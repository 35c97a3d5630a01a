"""A self-contained HTML report: title, key figures, tables, matplotlib figures and the configuration.

Benchmark and simulation commands build an ``HtmlReport``, add sections in order, and write one
HTML file with inline CSS and every chart embedded as a base64 PNG (no external files, no
scripts), so the page can be mailed or attached as is::

    report = HtmlReport("Philly replay", subtitle="gpupool sim replay --trace philly")
    report.key_figures({"GPU utilisation": "13.3 %", "wait p95": "0 s"})
    report.table("Per queue", ["queue", "jobs"], [["root.a", 10]])
    report.figure("Usage", fig)          # a matplotlib Figure, or PNG bytes
    report.config("Configuration", {"mode": "gpupool"})
    report.write(Path("report.html"))
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.subtitle { color: #666; font-family: monospace; margin-top: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: 0.6rem 0.9rem; min-width: 9rem; }
.figure .v { font-size: 1.4rem; font-weight: 600; } .figure .k { color: #666; font-size: 0.85rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
.note { color: #555; font-size: 0.9rem; }
"""


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


class HtmlReport:
    """Sections in the order they are added; ``render`` gives one HTML page."""

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self._parts: list[str] = []

    def heading(self, text: str) -> None:
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def key_figures(self, figures: Mapping[str, Any], title: str | None = None) -> None:
        if title:
            self.heading(title)
        items = "".join(
            f'<div class="figure"><div class="v">{html.escape(_cell(v))}</div>'
            f'<div class="k">{html.escape(k)}</div></div>'
            for k, v in figures.items()
        )
        self._parts.append(f'<div class="figures">{items}</div>')

    def table(
        self,
        title: str | None,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        note: str | None = None,
    ) -> None:
        if title:
            self.heading(title)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
        )
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if note:
            self.text(note, note=True)

    def figure(self, title: str | None, fig: Any, caption: str | None = None) -> None:
        """A matplotlib Figure (or PNG bytes), embedded as base64."""
        if title:
            self.heading(title)
        png = fig if isinstance(fig, bytes | bytearray) else figure_png(fig)
        data = base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        alt = html.escape(title or caption or "chart")
        self._parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>')

    def config(self, title: str, config: Mapping[str, Any] | str) -> None:
        self.heading(title)
        text = (
            config if isinstance(config, str) else json.dumps(config, indent=2, sort_keys=False, default=str)
        )
        self._parts.append(f"<pre>{html.escape(text)}</pre>")

    def render(self) -> str:
        sub = f'<p class="subtitle">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{sub}{''.join(self._parts)}</body></html>\n"
        )

    def write(self, path: Path) -> None:
        Path(path).write_text(self.render(), encoding="utf-8")
