"""Journey-stage fields: what a workflow attached to a lifecycle stage may read in conditions."""

from __future__ import annotations

import polars as pl

from cswf.engine.compile import AS_OF
from cswf.specs.workflow import STAGE_FIELD, STAGE_STARTED_FIELD, Stage


def stage_fields(stage: Stage | None) -> dict[str, pl.Expr]:
    """`days_left_in_stage`: the stage's length minus the days since the participant entered
    it, missing while it is in another stage (so conditions on it are false, by the null
    rule); `stage_goal`: the stage's goal."""
    if stage is None:
        return {}
    in_stage = pl.col(STAGE_FIELD) == stage.name
    days_in = (pl.col(AS_OF).dt.date() - pl.col(STAGE_STARTED_FIELD)).dt.total_days()
    return {
        "days_left_in_stage": pl.when(in_stage).then(pl.lit(stage.days) - days_in),
        "stage_goal": pl.lit(stage.goal, dtype=pl.String),
    }
