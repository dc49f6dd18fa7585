"""Hand a group's new tasks to its members: round robin, or to the least loaded.

Deterministic and vectorized: a tick's new tasks of a group are taken in action-id order; round
robin continues from the number of tasks the group has handed out before; least loaded fills
the members' open-task counts greedily (ties: the member listed first), which equals giving the
i-th task the i-th smallest of every member's (open + j, member) slots.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import polars as pl

from cswf.specs.groups import UserGroup

WORKLOAD_SCHEMA: dict[str, pl.DataType] = {
    "action_id": pl.String(),
    "owner_group": pl.String(),
    "assignee": pl.String(),
}


def group_tasks(actions: pl.DataFrame) -> pl.DataFrame:
    """The tasks of `actions` that a group owns, as workload rows."""
    return actions.filter(
        (pl.col("action_type") == "task") & pl.col("owner_group").is_not_null()
    ).select(list(WORKLOAD_SCHEMA))


def assign_tasks(
    actions: pl.DataFrame,
    groups: Mapping[str, UserGroup],
    workload: pl.DataFrame,
    events: pl.DataFrame,
    as_of: datetime,
) -> pl.DataFrame:
    """`actions` with the tasks owned by a known group assigned to one of its members.

    `workload` holds the group tasks of earlier ticks (action_id, owner_group, assignee); a task
    is open until a `completed` event at or before `as_of`.
    """
    if not groups or actions.is_empty():
        return actions
    is_group_task = (pl.col("action_type") == "task") & pl.col("owner_group").is_in(list(groups))
    if not actions.select(is_group_task.any()).item():
        return actions
    done = events.filter((pl.col("event_type") == "completed") & (pl.col("occurred_at") <= as_of))
    open_tasks = workload.join(done.select("action_id"), on="action_id", how="anti")
    picks = []
    tasks = actions.filter(is_group_task).select("action_id", "owner_group").sort("action_id")
    for (name,), mine in tasks.partition_by("owner_group", as_dict=True).items():
        group = groups[str(name)]
        if group.assignment == "round_robin":
            before = workload.filter(pl.col("owner_group") == name).height
            picks.append(_round_robin(mine, group.members, before))
        else:
            picks.append(_least_loaded(mine, group.members, open_tasks))
    chosen = pl.concat(picks)
    return actions.join(chosen, on="action_id", how="left", maintain_order="left").with_columns(
        pl.coalesce("__member", "assignee").alias("assignee")
    ).drop("__member")


def _round_robin(tasks: pl.DataFrame, members: tuple[str, ...], before: int) -> pl.DataFrame:
    turn = (pl.int_range(pl.len(), dtype=pl.Int64) + before) % len(members)
    return tasks.select("action_id", pl.lit(pl.Series(members)).gather(turn).alias("__member"))


def _least_loaded(tasks: pl.DataFrame, members: tuple[str, ...], open_tasks: pl.DataFrame
                  ) -> pl.DataFrame:
    load = (
        pl.DataFrame({"__member": list(members), "__rank": range(len(members))})
        .join(open_tasks.group_by("assignee").len(), left_on="__member", right_on="assignee",
              how="left", maintain_order="left")
        .with_columns(pl.col("len").fill_null(0).cast(pl.Int64))
    )
    n = tasks.height
    slots = (
        load.with_columns(pl.int_ranges(0, n).alias("__j")).explode("__j")
        .with_columns((pl.col("len") + pl.col("__j")).alias("__slot"))
        .sort("__slot", "__rank").head(n)
    )
    return tasks.select("action_id").with_columns(slots["__member"])
