-- How workflows execute, per period (day, ISO week from Monday, month; UTC) x workflow x action
-- type, plus an '(all)' row per period and workflow that also counts the runs (enrollments)
-- started, completed and exited in the period. Actions count in the period of the tick that
-- emitted them, with what became of them by the last tick: sent (delivery succeeded; a dry
-- run's previews included), failed (delivery finally failed), still pending; and response times: email
-- delivered -> opened (hours), task created (its tick) -> completed (days).
{% from "macros/latest_spec.sql" import latest_spec %}
WITH last_tick AS (
    SELECT max(as_of) AS as_of FROM {{ source('cswf', 'tick_log') }}
),
workflow_category AS (  -- a workflow's category is its latest spec version's
    SELECT workflow, category FROM ({{ latest_spec() }})
),
periods AS (
    SELECT * FROM (VALUES ('day'), ('week'), ('month')) AS p(period_type)
),
first_events AS (  -- the first time each result happened to each action, up to the last tick
    SELECT action_id,
           min(occurred_at) FILTER (event_type = 'delivered') AS delivered_at,
           min(occurred_at) FILTER (event_type = 'opened')    AS opened_at,
           min(occurred_at) FILTER (event_type = 'completed') AS completed_at,
           min(occurred_at) FILTER (event_type = 'failed')    AS failed_at
    FROM {{ source('cswf', 'action_events') }}, last_tick
    WHERE occurred_at <= last_tick.as_of
    GROUP BY action_id
),
actions AS (
    SELECT
        o.workflow,
        o.action_type,
        o.tick                                                      AS happened_at,
        coalesce(d.status IN ('sent', 'previewed') AND d.sent_at <= t.as_of, false) AS sent,
        e.failed_at IS NOT NULL                                     AS failed,
        CASE WHEN o.action_type = 'email' AND e.opened_at >= e.delivered_at
             THEN date_diff('second', e.delivered_at, e.opened_at) / 3600.0 END
                                                                    AS hours_to_open,
        CASE WHEN o.action_type = 'task' AND e.completed_at IS NOT NULL
             THEN date_diff('second', o.tick, e.completed_at) / 86400.0 END
                                                                    AS days_to_complete
    FROM {{ source('cswf', 'actions_outbox') }} AS o
    CROSS JOIN last_tick AS t
    LEFT JOIN {{ source('cswf', 'deliveries') }} AS d USING (action_id)
    LEFT JOIN first_events AS e USING (action_id)
),
dated_actions AS (
    SELECT p.period_type,
           CAST(CASE p.period_type
                    WHEN 'day' THEN date_trunc('day', a.happened_at)
                    WHEN 'week' THEN date_trunc('week', a.happened_at)
                    ELSE date_trunc('month', a.happened_at)
                END AS DATE) AS period_start,
           a.*
    FROM actions AS a CROSS JOIN periods AS p
),
action_rows AS (
    SELECT
        period_type,
        period_start,
        workflow,
        CASE WHEN grouping(action_type) = 1 THEN '(all)' ELSE action_type END  AS action_type,
        count(*)                                                  AS actions,
        count(*) FILTER (sent)                                    AS sent,
        count(*) FILTER (failed)                                  AS failed,
        count(*) FILTER (NOT sent AND NOT failed)                 AS pending,
        count(hours_to_open)                                      AS emails_opened,
        round(avg(hours_to_open), 2)                              AS avg_hours_delivered_to_opened,
        round(median(hours_to_open), 2)                           AS median_hours_delivered_to_opened,
        count(days_to_complete)                                   AS tasks_completed,
        round(avg(days_to_complete), 2)                           AS avg_days_created_to_completed,
        round(median(days_to_complete), 2)                        AS median_days_created_to_completed
    FROM dated_actions
    GROUP BY GROUPING SETS ((period_type, period_start, workflow, action_type),
                            (period_type, period_start, workflow))
),
runs AS (  -- an enrollment's start and close
    SELECT workflow, entered_at AS happened_at, 'started' AS happening FROM {{ source('cswf', 'enrollments') }}
    UNION ALL
    SELECT workflow, closed_at, status FROM {{ source('cswf', 'enrollments') }} WHERE closed_at IS NOT NULL
),
run_rows AS (
    SELECT p.period_type,
           CAST(CASE p.period_type
                    WHEN 'day' THEN date_trunc('day', r.happened_at)
                    WHEN 'week' THEN date_trunc('week', r.happened_at)
                    ELSE date_trunc('month', r.happened_at)
                END AS DATE)                           AS period_start,
           r.workflow,
           '(all)'                                     AS action_type,
           count(*) FILTER (r.happening = 'started')   AS runs_started,
           count(*) FILTER (r.happening = 'completed') AS runs_completed,
           count(*) FILTER (r.happening = 'exited')    AS runs_exited
    FROM runs AS r CROSS JOIN periods AS p
    GROUP BY ALL
)
SELECT
    period_type,
    period_start,
    c.category,
    workflow,
    action_type,
    CASE WHEN action_type = '(all)' THEN coalesce(r.runs_started, 0) END    AS runs_started,
    CASE WHEN action_type = '(all)' THEN coalesce(r.runs_completed, 0) END  AS runs_completed,
    CASE WHEN action_type = '(all)' THEN coalesce(r.runs_exited, 0) END     AS runs_exited,
    coalesce(a.actions, 0)                                                  AS actions,
    coalesce(a.sent, 0)                                                     AS sent,
    coalesce(a.failed, 0)                                                   AS failed,
    coalesce(a.pending, 0)                                                  AS pending,
    round(a.sent / nullif(a.actions, 0), 4)                                 AS success_rate,
    round(a.failed / nullif(a.actions, 0), 4)                               AS failure_rate,
    coalesce(a.emails_opened, 0)                                            AS emails_opened,
    a.avg_hours_delivered_to_opened,
    a.median_hours_delivered_to_opened,
    coalesce(a.tasks_completed, 0)                                          AS tasks_completed,
    a.avg_days_created_to_completed,
    a.median_days_created_to_completed
FROM action_rows AS a
FULL JOIN run_rows AS r USING (period_type, period_start, workflow, action_type)
LEFT JOIN workflow_category AS c USING (workflow)
ORDER BY period_type, period_start, workflow, action_type
