-- Per workflow and day (UTC; every day that has a tick): enrollments that entered, completed and
-- exited that day, how many were active at the day's last tick, the actions emitted that day by
-- type, and the deliveries that finally failed that day. What trends are drawn from. A full
-- recomputation from the timestamps the engine and delivery keep, so any past day reads as it
-- was (failures: events up to the last tick).
{% from "macros/latest_spec.sql" import latest_spec %}
WITH last_tick AS (
    SELECT max(as_of) AS as_of FROM {{ source('cswf', 'tick_log') }}
),
workflow_category AS (  -- a workflow's category is its latest spec version's
    SELECT workflow, category FROM ({{ latest_spec() }})
),
days AS (  -- each day with a tick, and its last tick
    SELECT CAST(as_of AS DATE) AS day, max(as_of) AS day_last_tick
    FROM {{ source('cswf', 'tick_log') }}
    GROUP BY ALL
),
grid AS (
    SELECT c.workflow, c.category, d.day, d.day_last_tick
    FROM workflow_category AS c CROSS JOIN days AS d
),
entered AS (
    SELECT workflow, CAST(entered_at AS DATE) AS day, count(*) AS entered
    FROM {{ source('cswf', 'enrollments') }}
    GROUP BY ALL
),
closed AS (
    SELECT workflow, CAST(closed_at AS DATE) AS day,
           count(*) FILTER (status = 'completed') AS completed,
           count(*) FILTER (status = 'exited')    AS exited
    FROM {{ source('cswf', 'enrollments') }}
    WHERE closed_at IS NOT NULL
    GROUP BY ALL
),
active AS (  -- inside at the day's last tick: entered by then, not closed by then
    SELECT g.workflow, g.day, count(*) AS active
    FROM grid AS g
    JOIN {{ source('cswf', 'enrollments') }} AS e
        ON e.workflow = g.workflow
       AND e.entered_at <= g.day_last_tick
       AND (e.closed_at IS NULL OR e.closed_at > g.day_last_tick)
    GROUP BY ALL
),
actions AS (
    SELECT workflow, CAST(tick AS DATE) AS day,
           count(*)                                        AS actions,
           count(*) FILTER (action_type = 'email')         AS emails,
           count(*) FILTER (action_type = 'task')          AS tasks,
           count(*) FILTER (action_type = 'field_update')  AS field_updates,
           count(*) FILTER (action_type = 'webhook')       AS webhooks,
           count(*) FILTER (action_type = 'notification')  AS notifications
    FROM {{ source('cswf', 'actions_outbox') }}
    GROUP BY ALL
),
failed AS (  -- a delivery that finally failed has one `failed` event
    SELECT o.workflow, CAST(min(v.occurred_at) AS DATE) AS day, o.action_id
    FROM {{ source('cswf', 'action_events') }} AS v
    JOIN {{ source('cswf', 'actions_outbox') }} AS o USING (action_id)
    CROSS JOIN last_tick AS t
    WHERE v.event_type = 'failed' AND v.occurred_at <= t.as_of
    GROUP BY o.workflow, o.action_id
),
failed_per_day AS (
    SELECT workflow, day, count(*) AS failed_deliveries FROM failed GROUP BY ALL
)
SELECT
    g.workflow,
    g.category,
    g.day,
    coalesce(n.entered, 0)            AS entered,
    coalesce(a.active, 0)             AS active,
    coalesce(c.completed, 0)          AS completed,
    coalesce(c.exited, 0)             AS exited,
    coalesce(x.actions, 0)            AS actions,
    coalesce(x.emails, 0)             AS emails,
    coalesce(x.tasks, 0)              AS tasks,
    coalesce(x.field_updates, 0)      AS field_updates,
    coalesce(x.webhooks, 0)           AS webhooks,
    coalesce(x.notifications, 0)      AS notifications,
    coalesce(f.failed_deliveries, 0)  AS failed_deliveries
FROM grid AS g
LEFT JOIN entered AS n USING (workflow, day)
LEFT JOIN active AS a USING (workflow, day)
LEFT JOIN closed AS c USING (workflow, day)
LEFT JOIN actions AS x USING (workflow, day)
LEFT JOIN failed_per_day AS f USING (workflow, day)
ORDER BY g.workflow, g.day
