"""The charts of the HTML page: each reads the BI copy with the first of its queries that the
copy can answer (a report, else the tables it is computed from) and draws a Plotly figure.

A chart whose tables are not published, or that has no rows, is drawn as "no data" by the page
rather than failing it: reports arrive over time, and a young project has little to show.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import plotly.graph_objects as go
import polars as pl

Draw = Callable[[pl.DataFrame], go.Figure]


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    about: str  # one sentence under the title: what is counted, from which table
    queries: tuple[str, ...]  # tried in order; each returns the columns `draw` reads
    draw: Draw

    def frame(self, con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame | None, str]:
        """The first query's rows that the copy can answer, and why not when none can."""
        missing = "its tables are not published yet"
        for query in self.queries:
            try:
                frame = con.sql(query).pl()
            except (duckdb.CatalogException, duckdb.BinderException) as exc:
                if missing.endswith("yet"):  # the first choice's reason: the report it needs
                    table = re.search(r"Table with name (\w+) does not exist", str(exc))
                    missing = (f"the report {table[1]} is not published yet" if table
                               else f"the copy cannot answer it ({str(exc).splitlines()[0]})")
                continue
            return (frame, "") if frame.height else (None, "no rows yet")
        return None, missing


def _layout(fig: go.Figure, y_title: str, *, x_title: str = "") -> go.Figure:
    fig.update_layout(
        template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 10, "b": 50},
        legend={"orientation": "h", "y": -0.18}, yaxis_title=y_title, xaxis_title=x_title,
        hovermode="x unified",
    )
    return fig


def _by_workflow(frame: pl.DataFrame, x: str, y: str, hover: str | None = None) -> go.Figure:
    fig = go.Figure()
    for (workflow,), part in frame.sort(x).partition_by("workflow", as_dict=True).items():
        fig.add_trace(go.Scatter(
            x=part[x].to_list(), y=part[y].to_list(), mode="lines+markers", name=str(workflow),
            customdata=part[hover].to_list() if hover else None,
            hovertemplate=f"%{{y}} ({hover} %{{customdata}})<extra>{workflow}</extra>"
            if hover else None,
        ))
    return fig


# -- completion time ---------------------------------------------------------------------------

COMPLETION = """
SELECT date_trunc('week', closed_at)::DATE AS week, workflow,
       round(median(date_diff('second', entered_at, closed_at) / 86400.0), 2) AS median_days,
       count(*) AS completed
FROM enrollments WHERE status = 'completed' GROUP BY ALL ORDER BY week, workflow
"""


def _completion(frame: pl.DataFrame) -> go.Figure:
    return _layout(_by_workflow(frame, "week", "median_days", "completed"),
                   "median days to complete", x_title="week completed")


# -- overdue per CSM ---------------------------------------------------------------------------

OVERDUE_NOW = """
SELECT coalesce(assignee, owner_group, '(unassigned)') AS csm, workflow,
       count(*) AS overdue, round(sum(days_early_late), 1) AS overdue_days
FROM milestone_history WHERE status = 'overdue' GROUP BY ALL ORDER BY csm, workflow
"""
OVERDUE_FROM_DASHBOARD = """
SELECT coalesce(csm, '(no CSM)') AS csm, workflow, count(*) AS overdue,
       round(sum(milestone_overdue_days), 1) AS overdue_days
FROM workflow_dashboard WHERE milestone_overdue_days > 0 GROUP BY ALL ORDER BY csm, workflow
"""


def _overdue(frame: pl.DataFrame) -> go.Figure:
    """Horizontal bars, most overdue on top: owners are long e-mail addresses."""
    order = (frame.group_by("csm").agg(pl.col("overdue").sum())
             .sort("overdue")["csm"].to_list())
    fig = go.Figure()
    for (workflow,), part in frame.partition_by("workflow", as_dict=True).items():
        fig.add_trace(go.Bar(
            y=part["csm"].to_list(), x=part["overdue"].to_list(), name=str(workflow),
            orientation="h", customdata=part["overdue_days"].to_list(),
            hovertemplate="%{x} overdue, %{customdata} days in all<extra>" + str(workflow)
            + "</extra>",
        ))
    _layout(fig, "", x_title="milestones overdue now")
    fig.update_layout(barmode="stack", showlegend=True, hovermode="closest",
                      height=max(380, 60 + 22 * len(order)),
                      yaxis={"categoryorder": "array", "categoryarray": order})
    return fig


# -- funnel per step ---------------------------------------------------------------------------

FUNNEL = """
SELECT workflow, step, step_name, reached FROM step_funnel ORDER BY workflow, step
"""
FUNNEL_FROM_TRANSITIONS = """
SELECT workflow, step, any_value(step_name) AS step_name,
       count(DISTINCT enrollment_id) AS reached
FROM transitions WHERE step IS NOT NULL GROUP BY workflow, step ORDER BY workflow, step
"""


def _funnel(frame: pl.DataFrame) -> go.Figure:
    """One funnel; a menu swaps in another workflow's steps (one trace: Plotly drops the step
    names of a funnel when hidden traces hold other ones)."""
    parts = frame.sort("workflow", "step").partition_by("workflow", as_dict=True)
    data = {str(key[0]): ([f"{s}. {n}" for s, n in zip(p["step"], p["step_name"], strict=True)],
                          p["reached"].to_list()) for key, p in parts.items()}
    first = next(iter(data))
    fig = go.Figure(go.Funnel(y=data[first][0], x=data[first][1],
                              textinfo="value+percent initial"))
    buttons = [{"label": name, "method": "restyle", "args": [{"y": [labels], "x": [counts]}]}
               for name, (labels, counts) in data.items()]
    fig.update_layout(updatemenus=[{"buttons": buttons, "x": 0, "xanchor": "left", "y": 1.12}],
                      template="plotly_white", height=420,
                      margin={"l": 20, "r": 20, "t": 40, "b": 30}, showlegend=False)
    return fig


# -- objective after exit ----------------------------------------------------------------------

OBJECTIVE_TREND = """
SELECT workflow, day_after_exit, round(100 * meeting_rate, 1) AS meeting_pct, observed
FROM objective_trend WHERE meeting_rate IS NOT NULL ORDER BY workflow, day_after_exit
"""


def _objective(frame: pl.DataFrame) -> go.Figure:
    return _layout(_by_workflow(frame, "day_after_exit", "meeting_pct", "observed"),
                   "% meeting the objective", x_title="days after leaving the workflow")


# -- actions and failures per day --------------------------------------------------------------

ACTION_KINDS = ("emails", "tasks", "field_updates", "webhooks", "notifications")
ACTIONS_DAILY = """
SELECT day, sum(emails) AS emails, sum(tasks) AS tasks, sum(field_updates) AS field_updates,
       sum(webhooks) AS webhooks, sum(notifications) AS notifications,
       sum(failed_deliveries) AS failed
FROM workflow_daily GROUP BY day ORDER BY day
"""
_MADE = """
    SELECT tick::DATE AS day,
           count(*) FILTER (action_type = 'email')        AS emails,
           count(*) FILTER (action_type = 'task')         AS tasks,
           count(*) FILTER (action_type = 'field_update') AS field_updates,
           count(*) FILTER (action_type = 'webhook')      AS webhooks,
           count(*) FILTER (action_type = 'notification') AS notifications
    FROM actions_outbox GROUP BY ALL
"""
ACTIONS_FROM_OUTBOX = f"""
WITH made AS ({_MADE}), failed AS (
    SELECT updated_at::DATE AS day, count(*) AS failed
    FROM deliveries WHERE status = 'failed' GROUP BY ALL
)
SELECT day, coalesce(emails, 0) AS emails, coalesce(tasks, 0) AS tasks,
       coalesce(field_updates, 0) AS field_updates, coalesce(webhooks, 0) AS webhooks,
       coalesce(notifications, 0) AS notifications, coalesce(failed, 0) AS failed
FROM made FULL JOIN failed USING (day) ORDER BY day
"""
ACTIONS_BEFORE_DELIVERY = f"SELECT *, 0 AS failed FROM ({_MADE}) ORDER BY day"


def _actions(frame: pl.DataFrame) -> go.Figure:
    fig = go.Figure()
    days = frame["day"].to_list()
    for kind in ACTION_KINDS:
        if frame[kind].sum():
            fig.add_trace(go.Bar(x=days, y=frame[kind].to_list(), name=kind.replace("_", " ")))
    fig.add_trace(go.Scatter(x=days, y=frame["failed"].to_list(), name="failed deliveries",
                             mode="lines", line={"color": "#d62728", "width": 2}))
    fig.update_layout(barmode="stack")
    return _layout(fig, "actions per day")


CHARTS = (
    Chart("completion", "Time to complete, by week",
          "Median days from entry to completion of the enrollments completed each week, per "
          "workflow (enrollments).", (COMPLETION,), _completion),
    Chart("overdue", "Overdue milestones per CSM",
          "Milestones past their due time and not done, as of the last tick, by owner "
          "(milestone_history; else the account's CSM in workflow_dashboard).",
          (OVERDUE_NOW, OVERDUE_FROM_DASHBOARD), _overdue),
    Chart("funnel", "Funnel per step",
          "Enrollments that reached each step of the workflow's flow (step_funnel; else "
          "transitions). Pick the workflow at the top right.", (FUNNEL, FUNNEL_FROM_TRANSITIONS),
          _funnel),
    Chart("objective", "Objective after exit",
          "Share of the enrollments that left a workflow whose objective held, by days after "
          "they left (objective_trend).", (OBJECTIVE_TREND,), _objective),
    Chart("actions", "Actions and failures per day",
          "Actions emitted per day by type, and deliveries that failed that day (workflow_daily; "
          "else actions_outbox and deliveries).",
          (ACTIONS_DAILY, ACTIONS_FROM_OUTBOX, ACTIONS_BEFORE_DELIVERY), _actions),
)
