"""Plots for report.html: the cohort funnel and the tier counts.

Both are horizontal bar charts, written directly as SVG text: a few
rectangles and labels, built in well under a millisecond (matplotlib took
0.1 s to draw them and 0.5 s to import, paid by every run). The page embeds
each as a ``data:`` URI — crisp at any zoom, and no file or network
reference. The text uses the reader's sans-serif font; the labels are
escaped (a tier name comes from the data).

Output is deterministic: the same counts give byte-identical SVG.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

#: Screening tiers in the order a reviewer reads them (SPEC §4): most
#: actionable first. Tables and plots use this order, not alphabetical.
TIER_ORDER: tuple[str, ...] = (
    "candidate",
    "needs_imaging",
    "contraindicated",
    "not_indicated",
    "no_fracture",
)

TIER_LABELS: dict[str, str] = {
    "candidate": "Candidate",
    "needs_imaging": "Needs imaging",
    "contraindicated": "Contraindicated",
    "not_indicated": "Not indicated",
    "no_fracture": "No fracture",
}

#: One colour per tier, shared by the plots and the page's CSS badges.
TIER_COLOURS: dict[str, str] = {
    "candidate": "#2f9e44",
    "needs_imaging": "#f08c00",
    "contraindicated": "#e03131",
    "not_indicated": "#5c7cfa",
    "no_fracture": "#adb5bd",
}

_FUNNEL_COLOURS = ("#364fc7", "#4263eb", "#5c7cfa", "#748ffc", TIER_COLOURS["candidate"])

WIDTH = 480
LABEL_WIDTH = 158  # the stage or tier names, right-aligned against the bars
ROW_HEIGHT = 42
BAR_HEIGHT = 30
MARGIN = 8
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
TEXT_COLOUR = "#212529"


def funnel_svg(stages: Sequence[tuple[str, int]]) -> str:
    """Draw the cohort funnel as SVG text.

    ``stages`` is ``[(label, count), ...]`` from the whole cohort down to
    the candidates; bars are centred so the chart reads as a funnel, and
    each carries its count and its share of the first stage.
    """
    counts = [int(count) for _, count in stages]
    total = counts[0] if counts else 0
    widest = max(counts, default=0) or 1
    area = WIDTH - LABEL_WIDTH - 2 * MARGIN
    colours = [_FUNNEL_COLOURS[min(i, len(_FUNNEL_COLOURS) - 1)] for i in range(len(stages))]
    if len(stages) > 1:
        colours[-1] = _FUNNEL_COLOURS[-1]
    rows = []
    for index, ((label, _), count, colour) in enumerate(zip(stages, counts, colours)):
        width = area * count / widest
        share = f"  ({count / total:.0%})" if total else ""
        rows.append(_row(index, label, LABEL_WIDTH + MARGIN + (area - width) / 2, width, colour))
        inside = count > 0.22 * widest
        rows.append(_text(LABEL_WIDTH + MARGIN + area / 2, _middle(index), f"{count:,}{share}", anchor="middle",
                          colour="#ffffff" if inside else TEXT_COLOUR, bold=True))
    return _svg(len(stages), rows)


def tier_counts_svg(counts: dict[str, int]) -> str:
    """Draw patients per tier as a horizontal bar chart (SVG text).

    Tiers appear in ``TIER_ORDER``; a tier not in ``counts`` is drawn as 0,
    and an unknown tier (from a newer screening stage) is appended in grey.
    """
    tiers = list(TIER_ORDER) + sorted(set(counts) - set(TIER_ORDER))
    values = [int(counts.get(tier, 0)) for tier in tiers]
    widest = max(values, default=0) or 1
    area = (WIDTH - LABEL_WIDTH - 2 * MARGIN) / 1.15  # room for the count after the widest bar
    rows = []
    for index, (tier, value) in enumerate(zip(tiers, values)):
        width = area * value / widest
        rows.append(_row(index, TIER_LABELS.get(tier, tier), LABEL_WIDTH + MARGIN, width,
                         TIER_COLOURS.get(tier, "#868e96")))
        rows.append(_text(LABEL_WIDTH + MARGIN + width + area * 0.015, _middle(index), f"{value:,}",
                          anchor="start", colour=TEXT_COLOUR, bold=True))
    return _svg(len(tiers), rows)


def svg_data_uri(svg: str) -> str:
    """Return ``svg`` as a ``data:image/svg+xml;base64,…`` URI for ``<img src>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _middle(index: int) -> float:
    return MARGIN + index * ROW_HEIGHT + ROW_HEIGHT / 2


def _row(index: int, label: str, left: float, width: float, colour: str) -> str:
    """A row's name (right-aligned before the bars) and its bar."""
    top = _middle(index) - BAR_HEIGHT / 2
    return (_text(LABEL_WIDTH, _middle(index), label, anchor="end", colour=TEXT_COLOUR)
            + f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{BAR_HEIGHT}" fill="{colour}"/>')


def _text(x: float, y: float, text: str, *, anchor: str, colour: str, bold: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" dominant-baseline="central" '
            f'fill="{colour}"{weight}>{escape(str(text))}</text>')


def _svg(rows: int, elements: list[str]) -> str:
    height = 2 * MARGIN + max(rows, 1) * ROW_HEIGHT
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="11.5">'
            + "".join(elements) + "</svg>")
