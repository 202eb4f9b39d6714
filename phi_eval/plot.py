"""The report's pass@k figure (pass_at_k.png), drawn with Pillow.

A line chart of pass@k against k, with the reported points marked, or one bar when each task has
a single sample.  It used to be matplotlib's; importing matplotlib alone took ~0.85 s of CPU, on
every `evaluate` and `run`, beside a sandbox that needs every core, for one small chart.  Pillow
draws it in a few milliseconds (its own FreeType font, so no font files are looked up), and the
same data always gives the same bytes (no metadata is written).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path

from phi_eval.files import write_bytes

WIDTH, HEIGHT = 600, 400
BLUE = (0x1F, 0x77, 0xB4)  # the curve and the bar (matplotlib's tab:blue, as before)
RED = (0xD6, 0x27, 0x28)  # the reported points (tab:red)
INK, GRID, FRAME = (0x26, 0x26, 0x26), (0xE4, 0xE4, 0xE4), (0x80, 0x80, 0x80)
LEFT, RIGHT, TOP, BOTTOM = 62, 18, 34, 52  # the plot area's margins, in pixels


def _fonts() -> tuple[object, object]:
    from PIL import ImageFont

    return ImageFont.load_default(size=12), ImageFont.load_default(size=14)


def _log_ticks(hi: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to `hi`."""
    out, decade = [], 1
    while decade <= hi:
        out += [t for t in (decade, 2 * decade, 5 * decade) if t <= hi]
        decade *= 10
    return out


def _int_ticks(hi: int) -> list[int]:
    """About six integer ticks from 1 to `hi`."""
    step = max(1, math.ceil(hi / 6))
    return [1] + [t for t in range(step, hi + 1, step) if t > 1]


def draw_pass_at_k(title: str, curve: Mapping[int, float], reported: Mapping[int, float]) -> bytes:
    """The figure as PNG bytes: `curve` (k -> pass@k for every k, may be empty) as a line,
    `reported` (k -> pass@k) as dots with their values; one bar when no k above 1 is known."""
    from PIL import Image, ImageDraw

    small, big = _fonts()
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP  # y0 is the bottom (pass@k = 0)

    def y_of(percent: float) -> float:
        return y0 - (y0 - y1) * percent / 105

    for tick in range(0, 101, 20):  # y axis: grid lines and labels
        y = y_of(tick)
        draw.line([(x0, y), (x1, y)], fill=GRID)
        draw.text((x0 - 6, y), str(tick), fill=INK, font=small, anchor="rm")
    label = Image.new("RGB", (int(draw.textlength("pass@k (%)", font=small)) + 4, 16), "white")
    ImageDraw.Draw(label).text((2, 8), "pass@k (%)", fill=INK, font=small, anchor="lm")
    img.paste(label.rotate(90, expand=True), (8, int((y0 + y1) / 2 - label.width / 2)))
    while draw.textlength(title, font=big) > WIDTH - 24 and len(title) > 4:
        title = title[:-2].rstrip() + "…"  # a long run name is shortened, not cut off by the edge
    draw.text(((x0 + x1) / 2, 16), title, fill=INK, font=big, anchor="mm")

    ks = sorted(reported)
    if max(ks + list(curve), default=1) <= 1:
        # n = 1: one number, so a bar (a lone dot on a stretched axis reads as nothing)
        value = 100 * reported.get(1, curve.get(1, 0.0))
        mid, half = (x0 + x1) / 2, (x1 - x0) / 8
        draw.rectangle([mid - half, y_of(value), mid + half, y0], fill=BLUE)
        draw.text((mid, y_of(value) - 4), f"{value:.1f}%", fill=INK, font=small, anchor="mb")
        draw.text((mid, y0 + 6), "pass@1", fill=INK, font=small, anchor="mt")
        xlabel = "one sample per task"
    else:
        hi = max(ks + list(curve))
        log = hi >= 20
        span = math.log(hi) if log else hi - 1 or 1

        def x_of(k: float) -> float:
            pos = math.log(k) if log else k - 1
            return x0 + 12 + (x1 - x0 - 24) * pos / span

        for tick in _log_ticks(hi) if log else _int_ticks(hi):
            x = x_of(tick)
            draw.line([(x, y0), (x, y1)], fill=GRID)
            draw.text((x, y0 + 6), str(tick), fill=INK, font=small, anchor="mt")
        if curve:
            points = [(x_of(k), y_of(100 * v)) for k, v in sorted(curve.items())]
            if len(points) > 1:
                draw.line(points, fill=BLUE, width=2, joint="curve")
        for k in ks:
            x, y = x_of(k), y_of(100 * reported[k])
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=RED)
            text = f"{100 * reported[k]:.1f}%"
            if x + 5 + draw.textlength(text, font=small) < WIDTH - 2:
                draw.text((x + 5, y - 6), text, fill=INK, font=small, anchor="lb")
            else:  # at the right edge: left of the dot
                draw.text((x - 5, y - 6), text, fill=INK, font=small, anchor="rb")
        _legend(draw, small, x1, y0, with_curve=bool(curve))
        xlabel = "k (samples drawn per task)"
    draw.rectangle([x0, y1, x1, y0], outline=FRAME)
    draw.text(((x0 + x1) / 2, HEIGHT - 14), xlabel, fill=INK, font=small, anchor="mm")
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _legend(draw: object, font: object, right: float, bottom: float, *, with_curve: bool) -> None:
    """Lower right, as the old figure had it: the curve's line and the reported points' dot."""
    rows = ([("line", "pass@k (all k)")] if with_curve else []) + [("dot", "reported")]
    width = 26 + max(int(draw.textlength(text, font=font)) for _, text in rows)
    top = bottom - 10 - 18 * len(rows)
    left = right - 10 - width
    draw.rectangle([left - 6, top - 4, right - 4, bottom - 8], fill="white", outline=GRID)
    for i, (kind, text) in enumerate(rows):
        y = top + 9 + 18 * i
        if kind == "line":
            draw.line([(left, y), (left + 18, y)], fill=BLUE, width=2)
        else:
            draw.ellipse([left + 5, y - 4, left + 13, y + 4], fill=RED)
        draw.text((left + 24, y), text, fill=INK, font=font, anchor="lm")


def write_pass_at_k(path: Path, title: str, curve: Mapping[int, float], reported: Mapping[int, float]) -> Path:
    """Draw the figure into `path` (atomically: a reader never sees half a PNG)."""
    write_bytes(path, draw_pass_at_k(title, curve, reported))
    return path

