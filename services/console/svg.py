"""Plots as inline SVG, drawn on the server: lines, scatters, bars and a stage timeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
W, H, PAD = 420, 300, 44


@dataclass(frozen=True)
class Frame:
    """Maps data coordinates into the plot area of a W x H picture."""

    x0: float
    x1: float
    y0: float
    y1: float
    left: float = PAD  # room for the y axis' title and tick labels

    def x(self, value: float) -> float:
        """The horizontal pixel of a data x."""
        span = (self.x1 - self.x0) or 1.0
        return round(self.left + (value - self.x0) / span * (W - self.left - 12), 1)

    def y(self, value: float) -> float:
        """The vertical pixel of a data y."""
        span = (self.y1 - self.y0) or 1.0
        return round(H - PAD - (value - self.y0) / span * (H - PAD - 12), 1)


CHAR = 6.5  # the width of a tick label's character, in pixels, at the stylesheet's font size
TICKS = 5


def _fmt(value: float) -> str:
    """A tick label of at most six characters: 0.25, 482, 48.4k, 1.2M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= 10 * scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _ticks(low: float, high: float) -> list[float]:
    return [low + (high - low) * i / (TICKS - 1) for i in range(TICKS)]


def framed(x0: float, x1: float, y0: float, y1: float) -> Frame:
    """A frame whose left margin fits the widest y tick label beside the y axis' title."""
    widest = max(len(_fmt(v)) for v in _ticks(y0, y1))
    return Frame(x0, x1, y0, y1, left=max(PAD, 26 + CHAR * widest))


def _axes(frame: Frame, x_label: str, y_label: str) -> list[str]:
    left = frame.left
    parts = [
        f'<rect x="{left}" y="12" width="{W - left - 12}" height="{H - PAD - 12}" class="plot-bg"/>'
    ]
    xs, ys = _ticks(frame.x0, frame.x1), _ticks(frame.y0, frame.y1)
    for i, (xv, yv) in enumerate(zip(xs, ys, strict=True)):
        anchor = "end" if i == TICKS - 1 else "middle"  # the last one stays inside the picture
        parts.append(
            f'<text x="{frame.x(xv)}" y="{H - PAD + 16}" text-anchor="{anchor}">{_fmt(xv)}</text>'
        )
        parts.append(
            f'<text x="{left - 4}" y="{frame.y(yv) + 4}" text-anchor="end">{_fmt(yv)}</text>'
        )
    parts.append(
        f'<text x="{(W + left) / 2}" y="{H - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="12" y="{H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {H / 2})">{escape(y_label)}</text>'
    )
    return parts


def _picture(title: str, parts: list[str]) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="plot" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{body}</svg>'
    )


def line_chart(
    series: Sequence[dict[str, Any]], *, title: str, x_label: str, y_label: str, diagonal: bool
) -> Markup:
    """Curves on a unit square (ROC, precision-recall), one colour and legend entry per series."""
    frame = Frame(0.0, 1.0, 0.0, 1.0)
    parts = _axes(frame, x_label, y_label)
    if diagonal:
        parts.append(
            f'<line x1="{frame.x(0)}" y1="{frame.y(0)}" x2="{frame.x(1)}" y2="{frame.y(1)}" '
            'class="guide"/>'
        )
    parts += _polylines(frame, series, legend=lambda i: (W - 16, H - PAD - 10 - 14 * i, "end"))
    return _picture(title, parts)


def _polylines(
    frame: Frame, series: Sequence[dict[str, Any]], *, legend: Callable[[int], tuple]
) -> list[str]:
    """One coloured line per series, and its legend entry where `legend(index)` says (x, y,
    text-anchor)."""
    parts = []
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join(
            f"{frame.x(x)},{frame.y(y)}" for x, y in zip(line["x"], line["y"], strict=True)
        )
        x, y, anchor = legend(index)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x}" y="{y}" text-anchor="{anchor}" fill="{colour}">'
            f"{escape(line['legend'])}</text>"
        )
    return parts


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values, default=0.0), max(values, default=1.0)
    margin = (high - low) * 0.05 or 1.0
    return low - margin, high + margin


def scatter(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    title: str,
    x_label: str,
    y_label: str,
    guide: str,
) -> Markup:
    """Points with a guide line: `identity` (y = x) or `zero` (y = 0)."""
    if guide == "identity":
        low, high = _bounds([*xs, *ys])
        frame = framed(low, high, low, high)
        ends = (low, low, high, high)
    else:
        frame = framed(*_bounds(xs), *_bounds([*ys, 0.0]))
        ends = (frame.x0, 0.0, frame.x1, 0.0)
    parts = _axes(frame, x_label, y_label)
    parts.append(
        f'<line x1="{frame.x(ends[0])}" y1="{frame.y(ends[1])}" x2="{frame.x(ends[2])}" '
        f'y2="{frame.y(ends[3])}" class="guide"/>'
    )
    parts.extend(
        f'<circle cx="{frame.x(x)}" cy="{frame.y(y)}" r="2.5" class="dot"/>'
        for x, y in zip(xs, ys, strict=True)
    )
    return _picture(title, parts)


def bars(items: Sequence[tuple[str, float]], *, title: str, unit: str) -> Markup:
    """Horizontal bars, largest first, each labelled with its name and value."""
    rows = list(items)[:20]
    height = 22 * len(rows) + 30
    top = max((value for _, value in rows), default=0.0) or 1.0
    parts = []
    for index, (name, value) in enumerate(rows):
        y = 10 + 22 * index
        width = max(0.0, value) / top * (W - 190)
        parts.append(
            f'<text x="150" y="{y + 13}" text-anchor="end">{escape(name[:24])}</text>'
            f'<rect x="156" y="{y}" width="{width:.1f}" height="16" class="bar"/>'
            f'<text x="{160 + width:.1f}" y="{y + 13}">{value:.3f}</text>'
        )
    parts.append(f'<text x="156" y="{height - 4}">{escape(unit)}</text>')
    body = "".join(parts)
    return Markup(
        f'<svg class="plot" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{body}</svg>'
    )


TIME_UNITS = ((3600.0, "hours"), (60.0, "minutes"), (1.0, "seconds"))


def lines_over_time(
    series: Sequence[dict[str, Any]], *, title: str, y_label: str, threshold: float | None
) -> Markup:
    """Lines of values over time (x: seconds before the newest point, shown in the unit that
    fits), one colour and legend entry per series, and the threshold as a dashed guide."""
    earliest = min((x for line in series for x in line["x"]), default=-1.0)
    scale, unit = next(((s, u) for s, u in TIME_UNITS if -earliest >= 2 * s), TIME_UNITS[-1])
    series = [{**line, "x": [x / scale for x in line["x"]]} for line in series]
    ys = [y for line in series for y in line["y"]]
    top = max([*ys, threshold or 0.0, 0.01]) * 1.1
    frame = framed(min(earliest / scale, -1.0), 0.0, 0.0, top)
    parts = _axes(frame, f"{unit} before the latest report", y_label)
    if threshold is not None:
        parts.append(
            f'<line x1="{frame.x(frame.x0)}" y1="{frame.y(threshold)}" x2="{frame.x(frame.x1)}" '
            f'y2="{frame.y(threshold)}" class="guide"/>'
        )
    parts += _polylines(frame, series, legend=lambda i: (frame.left + 6, 24 + 14 * i, "start"))
    return _picture(title, parts)
