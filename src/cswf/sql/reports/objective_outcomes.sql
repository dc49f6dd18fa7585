-- Did each enrollment of a workflow with an objective meet it, and when: while inside (the
-- engine's objective_met_at), or within 30 days after it left (the first day of
-- objective_after_exit on which the objective held). As of the last tick.
{% from "macros/latest_spec.sql" import latest_spec %}
WITH last_tick AS (
    SELECT max(as_of) AS as_of FROM {{ source('cswf', 'tick_log') }}
),
workflow_category AS (  -- a workflow's category is its latest spec version's
    SELECT workflow, category FROM ({{ latest_spec() }})
),
with_objective AS (
    SELECT workflow, version FROM {{ source('cswf', 'workflow_versions') }} WHERE has_objective
),
after_exit AS (
    SELECT enrollment_id,
           min(observed_at) FILTER (meets)   AS met_at,
           bool_and(meets IS NOT NULL)        AS judged
    FROM {{ ref('objective_after_exit') }}
    GROUP BY enrollment_id
),
outcomes AS (
    SELECT
        e.workflow,
        c.category,
        e.enrollment_id,
        e.participant_id,
        e.status,
        e.entered_at,
        e.closed_at,
        e.objective_met_at                                        AS met_inside_at,
        CASE WHEN e.objective_met_at IS NULL THEN a.met_at END     AS met_after_exit_at,
        a.judged                                                  AS after_exit_judged,
        t.as_of
    FROM {{ source('cswf', 'enrollments') }} AS e
    JOIN with_objective USING (workflow, version)
    LEFT JOIN workflow_category AS c USING (workflow)
    LEFT JOIN after_exit AS a USING (enrollment_id)
    CROSS JOIN last_tick AS t
)
SELECT
    workflow,
    category,
    enrollment_id,
    participant_id,
    status,
    entered_at,
    closed_at,
    met_inside_at,
    met_after_exit_at,
    coalesce(met_inside_at, met_after_exit_at)                     AS met_at,
    date_diff('second', entered_at, coalesce(met_inside_at, met_after_exit_at)) / 86400.0
                                                                   AS days_to_met,
    CASE
        WHEN met_inside_at IS NOT NULL THEN 'met_inside'
        WHEN met_after_exit_at IS NOT NULL THEN 'met_after_exit'
        WHEN status = 'active' THEN 'still_inside'
        ELSE 'not_met'
    END                                                            AS outcome,
    status <> 'active' AND met_inside_at IS NULL AND met_after_exit_at IS NULL
        AND closed_at + INTERVAL 30 DAY > as_of                    AS window_open,
    after_exit_judged,
    as_of
FROM outcomes
ORDER BY workflow, enrollment_id
