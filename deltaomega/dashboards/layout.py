"""What both dashboards share: the frame (uid, tags, time range, refresh) and rows of panels
with ids in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as model

P = TypeVar("P")


def assemble(
    title: str,
    uid: str,
    description: str,
    rows: Sequence[tuple[str, Sequence[P]]],
    panel: Callable[[P, int], cogbuilder.Builder[model.Panel]],
    variables: Sequence[cogbuilder.Builder[model.VariableModel]] = (),
) -> model.Dashboard:
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["deltaomega"])
        .time("now-1h", "now")
        .refresh("10s")
        .timezone("browser")
    )
    for variable in variables:
        board = board.with_variable(variable)
    ids = iter(range(1, 1000))
    for row_title, panels in rows:
        board = board.with_row(dashboard.Row(row_title).id(next(ids)))
        for p in panels:
            board = board.with_panel(panel(p, next(ids)))
    return board.build()
