"""Plots for report.html: the cohort funnel and the tier counts.

Figures are drawn with matplotlib's object-oriented API (``Figure``, never
``pyplot``), so no global backend or figure registry is touched: the
report can be written from a worker, a notebook or a server thread. Each
plot is returned as SVG text, which the page embeds as a ``data:`` URI —
crisp at any zoom, and no file or network reference.

Output is deterministic (fixed hash salt for element ids, no date in the
metadata, text drawn as paths with matplotlib's bundled DejaVu Sans), so
two runs over the same frames give byte-identical pages.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence

import matplotlib
from matplotlib.figure import Figure

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

_RC = {
    "svg.hashsalt": "vertebro-report",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.edgecolor": "#ced4da",
    "axes.linewidth": 0.8,
    "xtick.color": "#495057",
    "ytick.color": "#212529",
    "text.color": "#212529",
}


def funnel_svg(stages: Sequence[tuple[str, int]]) -> str:
    """Draw the cohort funnel as SVG text.

    ``stages`` is ``[(label, count), ...]`` from the whole cohort down to
    the candidates; bars are centred so the chart reads as a funnel, and
    each carries its count and its share of the first stage.
    """
    labels = [label for label, _ in stages]
    counts = [int(count) for _, count in stages]
    total = counts[0] if counts else 0
    widest = max(counts, default=0) or 1
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(6.4, 0.55 * len(stages) + 0.5))
        axes = figure.add_subplot()
        positions = list(range(len(stages)))[::-1]
        lefts = [(widest - count) / 2 for count in counts]
        colours = [_FUNNEL_COLOURS[min(i, len(_FUNNEL_COLOURS) - 1)] for i in range(len(stages))]
        if len(stages) > 1:
            colours[-1] = _FUNNEL_COLOURS[-1]
        axes.barh(positions, counts, left=lefts, height=0.72, color=colours)
        for position, count in zip(positions, counts):
            share = f"  ({count / total:.0%})" if total else ""
            axes.text(widest / 2, position, f"{count:,}{share}", ha="center", va="center",
                      color="white" if count > 0.22 * widest else "#212529",
                      fontsize=9.5, fontweight="bold")
        axes.set_yticks(positions, labels)
        axes.set_xlim(0, widest)
        axes.set_xticks([])
        for side in ("top", "right", "bottom", "left"):
            axes.spines[side].set_visible(False)
        axes.tick_params(axis="y", length=0, pad=8)
        figure.tight_layout(pad=0.4)
        return _svg_text(figure)


def tier_counts_svg(counts: dict[str, int]) -> str:
    """Draw patients per tier as a horizontal bar chart (SVG text).

    Tiers appear in ``TIER_ORDER``; a tier not in ``counts`` is drawn as 0,
    and an unknown tier (from a newer screening stage) is appended in grey.
    """
    tiers = list(TIER_ORDER) + sorted(set(counts) - set(TIER_ORDER))
    values = [int(counts.get(tier, 0)) for tier in tiers]
    widest = max(values, default=0) or 1
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(6.4, 0.5 * len(tiers) + 0.5))
        axes = figure.add_subplot()
        positions = list(range(len(tiers)))[::-1]
        axes.barh(positions, values, height=0.68,
                  color=[TIER_COLOURS.get(tier, "#868e96") for tier in tiers])
        for position, value in zip(positions, values):
            axes.text(value + widest * 0.015, position, f"{value:,}", va="center",
                      fontsize=9.5, fontweight="bold")
        axes.set_yticks(positions, [TIER_LABELS.get(tier, tier) for tier in tiers])
        axes.set_xlim(0, widest * 1.15)
        axes.set_xticks([])
        for side in ("top", "right", "bottom"):
            axes.spines[side].set_visible(False)
        axes.tick_params(axis="y", length=0, pad=8)
        figure.tight_layout(pad=0.4)
        return _svg_text(figure)


def svg_data_uri(svg: str) -> str:
    """Return ``svg`` as a ``data:image/svg+xml;base64,…`` URI for ``<img src>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


# The DOCTYPE names an external DTD and the RDF block carries a creator
# URL; neither is needed to draw, and the page promises no external
# references, so both are dropped. The xmlns declarations stay: they are
# names, never fetched, and a standalone SVG image needs them.
_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*")
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _svg_text(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None},
                   transparent=True)
    return _METADATA.sub("", _DOCTYPE.sub("", buffer.getvalue()))
