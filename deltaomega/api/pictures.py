"""SVG pictures of one interaction window, for reports and notifications (matplotlib): the
interaction network (voices on a circle, sized by their outgoing strength; links coloured by
kind, as wide as their strength; antagonistic pairs drawn red) and the heat map of the
summed strength from each voice to each other."""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deltaomega.api.matrix import ANTAGONISTIC, MatrixResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOURS = {
    "COOPERATION": "#2a9d8f",
    "COMPLEMENTATION": "#457b9d",
    "AMPLIFICATION": "#8ab17d",
    "COMPETITION": "#e76f51",
    "SUPPRESSION": "#c1121f",
}
_STYLE: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "deltaomega"}  # text; ids
#: matplotlib's settings are global: one picture at a time (Figure, not pyplot, so no
#: figure is kept anywhere after it is drawn)
_DRAWING = threading.Lock()


def _svg(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return out.getvalue()


def network_svg(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    """``rows``: source, target, kind and strength of the window's links."""
    voices = sorted({r["source"] for r in rows} | {r["target"] for r in rows})
    place = {
        v: (
            math.cos(2 * math.pi * i / max(len(voices), 1)),
            math.sin(2 * math.pi * i / max(len(voices), 1)),
        )
        for i, v in enumerate(voices)
    }
    out_strength = {v: sum(r["strength"] for r in rows if r["source"] == v) for v in voices}
    top = max([*(r["strength"] for r in rows), 1e-9])
    # matplotlib is imported here, not with the API: it costs most of a second at start
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    with _DRAWING, rc_context(_STYLE):
        figure = Figure(figsize=(6, 6))
        axes = figure.subplots()
        for n, r in enumerate(rows):
            antagonistic = r["kind"] in ANTAGONISTIC
            axes.add_patch(
                FancyArrowPatch(
                    place[r["source"]],
                    place[r["target"]],
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color=COLOURS[r["kind"]],
                    lw=0.5 + 4 * r["strength"] / top,
                    alpha=0.9 if antagonistic else 0.6,
                    connectionstyle="arc3,rad=0.12",
                    shrinkA=12,
                    shrinkB=12,
                    gid=f"link-{n}",
                )
            )
        biggest = max([*out_strength.values(), 1e-9])
        for v, (x, y) in place.items():
            axes.scatter(
                [x], [y], s=200 + 900 * out_strength[v] / biggest, color="#264653", zorder=3
            )
            axes.text(x * 1.18, y * 1.18, v, ha="center", va="center", fontsize=9)
        axes.set_title(title, fontsize=10)
        axes.set_xlim(-1.4, 1.4)
        axes.set_ylim(-1.4, 1.4)
        axes.set_aspect("equal")
        axes.axis("off")
        return _svg(figure)


def heatmap_svg(matrix: MatrixResult, title: str) -> bytes:
    """Summed strength of every kind from each voice (rows) to each other (columns)."""
    n = len(matrix.voices)
    total = [[sum(m[i][j] for m in matrix.matrices.values()) for j in range(n)] for i in range(n)]
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with _DRAWING, rc_context(_STYLE):
        figure = Figure(figsize=(1.5 + 0.5 * n, 1 + 0.5 * n))
        axes = figure.subplots()
        image = axes.imshow(total if n else [[0.0]], cmap="viridis")
        axes.set_xticks(range(n), matrix.voices, rotation=90, fontsize=8)
        axes.set_yticks(range(n), matrix.voices, fontsize=8)
        axes.set_xlabel("target")
        axes.set_ylabel("source")
        axes.set_title(title, fontsize=10)
        figure.colorbar(image, ax=axes, label="strength")
        return _svg(figure)
