"""Draws a `figures.Figure` as a PNG (matplotlib) and an interactive HTML page (plotly).

Matplotlib is used through `matplotlib.figure.Figure` and its Agg canvas, never pyplot, so no
global backend is switched in the search process. Without plotly the HTML page holds the PNG
and the plotted numbers as a table.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hk_tune.tracking import figures
from hk_tune.tracking.figures import Figure, Panel

log = logging.getLogger(__name__)

_COLUMNS = 3  # panels per row
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def draw_search_plots(
    folder: Path,
    results: list[dict[str, Any]],
    metric: str,
    mode: str,
    importances: dict[str, float],
    histories: dict[str, list[dict[str, Any]]],
    best_trial_id: str | None,
    baseline_trial_id: str | None,
    names: dict[str, str],
) -> tuple[list[Path], dict[str, Exception]]:
    """Draws the search's plots into `folder`: importances, metric_vs_rate and curves, each as
    PNG and HTML, skipping those without data (arguments as in `SearchTracker.finish_search`).

    Returns:
        The files written, and the plots that failed with their errors: one plot's bug never
        keeps the others, or the results table, off the parent run.
    """
    builders: dict[str, Callable[[], Figure | None]] = {
        "importances": lambda: figures.importances(importances, figures.scored_trials(results)),
        "metric_vs_rate": lambda: figures.metric_vs_rate(results, metric, mode,
                                                         baseline_trial_id),
        "curves": lambda: figures.curves(histories, metric, best_trial_id, baseline_trial_id,
                                         names),
    }
    written: list[Path] = []
    failed: dict[str, Exception] = {}
    for name, build in builders.items():
        try:
            figure = build()
            written += render(figure, folder) if figure else []
        except Exception as error:
            failed[name] = error
            log.warning("could not draw %s: %s", name, error, exc_info=True)
    return written, failed


def render(figure: Figure, folder: Path) -> list[Path]:
    """Writes `<folder>/<name>.png` and `<folder>/<name>.html`; returns both paths."""
    png = folder / f"{figure.name}.png"
    page = folder / f"{figure.name}.html"
    _png(figure, png)
    try:
        _plotly_html(figure, page)
    except ImportError:
        _static_html(figure, png, page)
    return [png, page]


def _grid(figure: Figure) -> tuple[int, int]:
    cols = min(_COLUMNS, len(figure.panels))
    return math.ceil(len(figure.panels) / cols), cols


def _colors(figure: Figure) -> dict[str, str]:
    # One colour per label across panels, so "column" is the same colour in every position.
    labels = dict.fromkeys(s.label for p in figure.panels for s in p.series if s.kind == "line")
    return {label: _PALETTE[i % len(_PALETTE)] for i, label in enumerate(labels)}


def _png(figure: Figure, path: Path) -> None:
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.ticker import MaxNLocator

    rows, cols = _grid(figure)
    bars = max((len(s.y) for p in figure.panels for s in p.series if s.kind == "barh"), default=0)
    height = max(3.6, 0.3 * bars + 1.2) * rows
    canvas = MplFigure(figsize=(4.8 * cols, height), layout="constrained")
    canvas.suptitle(figure.title)
    colors = _colors(figure)
    for index, panel in enumerate(figure.panels):
        axes = canvas.add_subplot(rows, cols, index + 1)
        axes.set_title(panel.title, fontsize=10)
        axes.set_xlabel(panel.xlabel)
        axes.set_ylabel(panel.ylabel)
        for series in panel.series:
            if series.kind == "barh":
                axes.barh(series.y, series.x, color=_PALETTE[0])
            elif series.kind == "hline":
                axes.axhline(series.y[0], linestyle="--", color="gray", label=series.label)
            elif series.kind == "points":
                axes.scatter(series.x, series.y, marker="x", color="gray", label=series.label)
            else:
                axes.plot(series.x, series.y, marker="o", label=series.label,
                          color=colors[series.label])
                if series.low and series.high:
                    axes.fill_between(series.x, series.low, series.high, alpha=0.2, linewidth=0,
                                      color=colors[series.label])
        if any(s.kind != "barh" for s in panel.series):
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
        if panel.x_from_zero:
            axes.set_xlim(left=0, right=max(axes.get_xlim()[1], 0.05))
        if panel.integer_x:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    canvas.savefig(path, dpi=110)


def _plotly_html(figure: Figure, path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, cols = _grid(figure)
    plot = make_subplots(rows=rows, cols=cols, subplot_titles=[p.title for p in figure.panels])
    colors = _colors(figure)
    shown: set[str] = set()
    for index, panel in enumerate(figure.panels):
        row, col = index // cols + 1, index % cols + 1
        for series in panel.series:
            if series.kind == "hline":
                plot.add_hline(y=series.y[0], line_dash="dash", line_color="gray", row=row,
                               col=col, annotation_text=series.label)
                continue
            if series.kind == "barh":
                trace = go.Bar(x=series.x, y=series.y, orientation="h", name=series.label,
                               showlegend=False)
            elif series.kind == "points":
                trace = go.Scatter(x=series.x, y=series.y, mode="markers", name=series.label,
                                   marker={"symbol": "x", "color": "gray"},
                                   legendgroup=series.label,
                                   showlegend=series.label not in shown,
                                   hovertext=series.hover or None)
                shown.add(series.label)
            else:
                if series.low and series.high:  # the band: its upper edge, then filled down
                    for edge, fill in ((series.high, None), (series.low, "tonexty")):
                        plot.add_trace(go.Scatter(
                            x=series.x, y=edge, mode="lines", line={"width": 0}, fill=fill,
                            fillcolor=_translucent(colors[series.label]), hoverinfo="skip",
                            legendgroup=series.label, showlegend=False), row=row, col=col)
                trace = go.Scatter(
                    x=series.x, y=series.y, mode="lines+markers", name=series.label,
                    legendgroup=series.label, showlegend=series.label not in shown,
                    line={"color": colors[series.label]}, hovertext=series.hover or None,
                )
                shown.add(series.label)
            plot.add_trace(trace, row=row, col=col)
        plot.update_xaxes(title_text=panel.xlabel, row=row, col=col,
                          rangemode="tozero" if panel.x_from_zero else "normal")
        plot.update_yaxes(title_text=panel.ylabel, row=row, col=col)
    # Width follows the window: the MLflow UI shows the page in a pane narrower than the screen.
    plot.update_layout(title_text=figure.title, height=420 * rows + 60, autosize=True,
                       legend={"orientation": "h", "yanchor": "top", "y": -0.18})
    # plotly.js is embedded (4.6 MB) because the MLflow UI shows HTML artifacts from a blob URL,
    # from which neither a sibling script file nor, offline, a CDN can be loaded.
    plot.write_html(path, include_plotlyjs=True, full_html=True, default_width="100%",
                    config={"responsive": True})


def _translucent(color: str) -> str:
    """`#rrggbb` as an rgba colour at 20% opacity, for a band."""
    red, green, blue = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, 0.2)"


def _static_html(figure: Figure, png: Path, path: Path) -> None:
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    parts = [f"<h1>{html.escape(figure.title)}</h1>",
             f'<img alt="{html.escape(figure.title)}" src="data:image/png;base64,{image}">']
    for panel in figure.panels:
        parts.append(f"<h2>{html.escape(panel.title or figure.title)}</h2>")
        parts.append(_table(panel))
    body = "\n".join(parts)
    path.write_text(f"<!doctype html><meta charset='utf-8'><title>{html.escape(figure.title)}"
                    f"</title><body>{body}</body>")


def _table(panel: Panel) -> str:
    flip = any(s.kind == "barh" for s in panel.series)  # bars: the label column comes first
    first, second = (panel.ylabel, panel.xlabel) if flip else (panel.xlabel, panel.ylabel)
    cells = [f"<tr><th>series</th><th>{html.escape(first)}</th><th>{html.escape(second)}</th>"]
    for s in panel.series:
        if s.kind == "hline":
            pairs = [("", s.y[0])]
        elif s.kind == "barh":
            pairs = list(zip(s.y, s.x, strict=True))
        else:
            pairs = list(zip(s.x, s.y, strict=True))
        for a, b in pairs:
            cells.append(f"<tr><td>{html.escape(s.label)}</td><td>{html.escape(str(a))}</td>"
                         f"<td>{html.escape(str(b))}</td></tr>")
    return "<table border=1>" + "".join(cells) + "</table>"
