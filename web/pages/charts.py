"""Small charts drawn as SVG on the server: a line chart over time and horizontal bar charts.

Hand-written rather than a plotting library: the report needs two kinds of chart, a few dozen
points each, and SVG that a page embeds inline (so it prints as vector paths from Chromium's
PDF and needs no script, no image request and no font files). matplotlib's SVG backend would
add tens of megabytes to the install and a second to the first import for the same drawing,
and writes its own ids and styles that a Content-Security-Policy and a print stylesheet then
have to work around. Every label goes through `esc` (XML escaping), so a title or an employer
name typed by a host can never become markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

CST = timezone(timedelta(hours=8))
FONT = "font-family=\"system-ui, 'Noto Sans CJK SC', 'PingFang SC', sans-serif\""


def esc(text: object) -> str:
    """Text for an SVG text node or attribute: &, <, > and both quotes escaped."""
    return escape(str(text), {'"': "&quot;", "'": "&#39;"})


def _nice_step(v: float) -> float:
    """A round step at or above `v`: 1, 2 or 5 times a power of ten."""
    if v <= 0:
        return 1
    step = 1.0
    while step * 10 <= v:
        step *= 10
    while step / 10 >= v:
        step /= 10
    for m in (1, 2, 5, 10):
        if v <= m * step:
            return m * step
    return 10 * step


def _ticks(top: float, whole: bool) -> list[float]:
    """Axis values from 0 to a round value at or above `top`, about four steps; whole steps
    for counts."""
    step = _nice_step(top / 4)
    if whole:
        step = max(1.0, step)
    n = max(1, int(-(-top // step)))
    return [step * k for k in range(n + 1)]


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def hhmm(ms: int) -> str:
    """'14:05' in China time, the time the broadcast's own audience read."""
    return datetime.fromtimestamp(ms / 1000, CST).strftime("%H:%M")


def hhmmss(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, CST).strftime("%H:%M:%S")


def line_chart(
    points: Sequence[tuple[int, float]],
    *,
    title: str,
    empty: str,
    width: int = 640,
    height: int = 220,
    x_label: Callable[[int], str] | None = None,
) -> str:
    """A line over time: `points` are (unix ms, value). An empty series draws `empty`. Times
    read HH:MM, or HH:MM:SS when the whole series spans less than ten minutes."""
    left, right, top, bottom = 44, 12, 28, 28
    w, h = width - left - right, height - top - bottom
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" aria-label="{esc(title)}" {FONT}>',
        f"<title>{esc(title)}</title>",
        f'<text x="{left}" y="16" font-size="14" font-weight="600" fill="#111">{esc(title)}</text>',
    ]
    if not points:
        out.append(
            f'<text x="{left + w / 2}" y="{top + h / 2}" text-anchor="middle" font-size="13"'
            f' fill="#555">{esc(empty)}</text></svg>'
        )
        return "".join(out)
    t0, t1 = points[0][0], points[-1][0]
    span = max(1, t1 - t0)
    label = x_label or (hhmm if span >= 600_000 else hhmmss)
    ticks = _ticks(max(v for _, v in points), all(float(v).is_integer() for _, v in points))
    top_v = ticks[-1]

    def x(t: int) -> float:
        return left + (w * (t - t0) / span if t1 > t0 else w / 2)

    def y(v: float) -> float:
        return top + h - h * v / top_v

    for v in ticks:  # grid and the value axis
        yy = y(v)
        out.append(
            f'<path d="M{left} {yy:.1f}H{left + w}" stroke="#ddd" stroke-width="1" fill="none"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11"'
            f' fill="#444">{esc(_fmt(v))}</text>'
        )
    marks = (
        [(t0, "start"), (t0 + span // 2, "middle"), (t1, "end")] if t1 > t0 else [(t0, "middle")]
    )
    for t, anchor in marks:
        out.append(
            f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="{anchor}" font-size="11"'
            f' fill="#444">{esc(label(t))}</text>'
        )
    d = "M" + " L".join(f"{x(t):.1f} {y(v):.1f}" for t, v in points)
    out.append(f'<path class="series" d="{d}" stroke="#1f5fbf" stroke-width="2" fill="none"/>')
    for t, v in points:
        out.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="#1f5fbf"/>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    rows: Sequence[tuple[str, float]],
    *,
    title: str,
    empty: str,
    width: int = 640,
    unit: str = "",
    row_height: int = 26,
) -> str:
    """Horizontal bars, one per (label, value), in the order given."""
    label_w, right, top = 190, 56, 28
    height = top + max(1, len(rows)) * row_height + 8
    w = width - label_w - right
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" aria-label="{esc(title)}" {FONT}>',
        f"<title>{esc(title)}</title>",
        f'<text x="4" y="16" font-size="14" font-weight="600" fill="#111">{esc(title)}</text>',
    ]
    if not rows:
        out.append(
            f'<text x="{width / 2}" y="{top + 16}" text-anchor="middle" font-size="13"'
            f' fill="#555">{esc(empty)}</text></svg>'
        )
        return "".join(out)
    top_v = max(v for _, v in rows) or 1
    for k, (label, v) in enumerate(rows):
        yy = top + k * row_height
        short = label if len(label) <= 14 else label[:13] + "…"
        bw = w * v / top_v
        out.append(
            f'<text x="{label_w - 8}" y="{yy + row_height / 2 + 4:.1f}" text-anchor="end"'
            f' font-size="12" fill="#222">{esc(short)}</text>'
        )
        out.append(
            f'<path class="bar" d="M{label_w} {yy + 4}h{bw:.1f}v{row_height - 8}h{-bw:.1f}Z"'
            f' fill="#1f5fbf"/>'
        )
        out.append(
            f'<text x="{label_w + bw + 6:.1f}" y="{yy + row_height / 2 + 4:.1f}" font-size="12"'
            f' fill="#222">{esc(_fmt(v) + unit)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
