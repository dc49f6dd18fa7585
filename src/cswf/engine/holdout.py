"""Holdout groups: a fixed share of those a workflow admits enters its control group.

Who is held out is a pure function of the workflow's name and the participant's id, so it is the
same on every machine and in every version of Python, Polars and DuckDB: the first 8 bytes of
SHA-256 of `<workflow>/<participant_id>` (UTF-8), read as a big-endian unsigned integer, modulo
10,000, is below the percent in hundredths (10% holds out buckets 0..999). In SQL:
`('0x' || sha256(workflow || '/' || participant_id)[1:16])::UBIGINT % 10000` (DuckDB). Polars'
and DuckDB's `hash()` promise no such stability, so they are not used.

Only those admitted at a tick are hashed (a few hundred at most, once per enrollment), with
hashlib over the batch; 10,000 ids take about 10 ms.

A control enrollment goes through entry, exit and objective like any other, but runs no step and
no milestone (nothing is emitted for it), and completes when its holdout window ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

import numpy as np
import polars as pl

from cswf.engine.frames import moment
from cswf.specs.workflow import Holdout

CONTROL, TREATMENT = "control", "treatment"
BUCKETS = 10_000
COHORT = "cohort"
STEP_NAME = "(control group)"  # where a control enrollment is: at no step of the flow


def buckets(workflow: str, participant_ids: pl.Series) -> np.ndarray:
    """Each participant's bucket in 0..9999 for `workflow` (see the module docstring)."""
    return sha256_buckets(f"{workflow}/{pid}" for pid in participant_ids.to_list())


def sha256_buckets(keys: Iterable[str]) -> np.ndarray:
    """Each key's bucket in 0..9999: the first 8 bytes of SHA-256 of its UTF-8, big-endian,
    modulo 10,000 (the one stable hash cswf uses: holdouts here, shards in engine/shards.py)."""
    digests = b"".join(hashlib.sha256(key.encode()).digest()[:8] for key in keys)
    return np.frombuffer(digests, dtype=">u8") % BUCKETS


def is_control(workflow: str, participant_ids: pl.Series, holdout: Holdout) -> pl.Series:
    """Whether each participant is held out of `workflow`."""
    if participant_ids.is_empty():
        return pl.Series(COHORT, [], dtype=pl.Boolean)
    return pl.Series(COHORT, buckets(workflow, participant_ids) < round(holdout.percent * 100))


def assign_cohorts(admitted: pl.DataFrame, workflow: str, holdout: Holdout | None
                   ) -> pl.DataFrame:
    """`admitted` with its cohort: control or treatment (left null without a holdout)."""
    if holdout is None or admitted.is_empty():
        return admitted
    control = pl.lit(is_control(workflow, admitted["participant_id"], holdout))
    return admitted.with_columns(
        pl.when(control).then(pl.lit(CONTROL)).otherwise(pl.lit(TREATMENT)).alias(COHORT),
        pl.when(control).then(pl.lit(STEP_NAME)).otherwise("step_name").alias("step_name"),
        pl.when(control).then(None).otherwise("wait_until").alias("wait_until"),
    )


def held_out(active: pl.DataFrame) -> pl.Series:
    """Which active enrollments are in a control group."""
    return (active[COHORT] == CONTROL).fill_null(False)


def window_ended(control: pl.DataFrame, holdout: Holdout | None, as_of: datetime) -> pl.Series:
    """Which control enrollments have reached the end of their holdout window."""
    days = holdout.window_days if holdout is not None else 0
    return control.select(
        (pl.col("entered_at") + pl.duration(days=days) <= moment(as_of)).fill_null(False)
    ).to_series()
