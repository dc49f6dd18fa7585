-- Per workflow (Natero's summary page, Catalyst's settings tab): how many enrollments it has had,
-- where they are now, how long completion takes, and how often the objective is met (while
-- inside, or within 30 days after leaving: objective_outcomes). As of the last tick.
{% from "macros/latest_spec.sql" import latest_spec %}
WITH latest_spec AS (
    {{ latest_spec() }}
),
per_workflow AS (
    SELECT
        workflow,
        count(*)                                             AS deployed,
        count(*) FILTER (WHERE status = 'active')            AS active,
        count(*) FILTER (WHERE status = 'completed')         AS completed,
        count(*) FILTER (WHERE status = 'exited')            AS exited,
        count(DISTINCT participant_id)                       AS participants,
        round(avg(date_diff('second', entered_at, closed_at) / 86400.0)
              FILTER (WHERE status = 'completed'), 2)        AS avg_days_to_complete,
        min(entered_at)                                      AS first_entry_at,
        max(entered_at)                                      AS last_entry_at
    FROM {{ source('cswf', 'enrollments') }}
    GROUP BY workflow
),
objective AS (
    SELECT
        workflow,
        count(*) FILTER (WHERE outcome IN ('met_inside', 'met_after_exit')) AS objective_met,
        count(*) FILTER (WHERE outcome = 'met_after_exit')                 AS met_after_exit
    FROM {{ ref('objective_outcomes') }}
    GROUP BY workflow
)
SELECT
    s.workflow,
    s.category,
    s.state,
    s.auto_deploy,
    s.priority,
    s.version                                 AS current_version,
    coalesce(p.deployed, 0)                   AS deployed,
    coalesce(p.active, 0)                     AS active,
    coalesce(p.completed, 0)                  AS completed,
    coalesce(p.exited, 0)                     AS exited,
    coalesce(p.participants, 0)               AS participants,
    p.avg_days_to_complete,
    coalesce(o.objective_met, 0)              AS objective_met,
    coalesce(o.met_after_exit, 0)             AS objective_met_after_exit,
    CASE WHEN s.has_objective
         THEN round(coalesce(o.objective_met, 0) / nullif(p.deployed, 0), 4) END
                                              AS objective_met_rate,
    p.first_entry_at,
    p.last_entry_at,
    (SELECT max(as_of) FROM {{ source('cswf', 'tick_log') }})         AS as_of
FROM latest_spec AS s
LEFT JOIN per_workflow AS p USING (workflow)
LEFT JOIN objective AS o USING (workflow)
ORDER BY s.priority, s.workflow
