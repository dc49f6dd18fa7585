-- Per workflow with an objective: how many enrollments met it while inside, how many within 30
-- days after they left, the met rate and the median days from entry to meeting it; and the
-- breakdown of enrollments into met, not met and still inside. Read from {{ ref('objective_outcomes') }}.
{% from "macros/latest_spec.sql" import latest_spec %}
WITH objective AS (  -- the workflow's latest spec version, when it has an objective
    SELECT workflow, category,
           coalesce(spec_json ->> '$.objective.condition.field', '(several fields)') AS field
    FROM ({{ latest_spec() }})
    WHERE has_objective
),
counted AS (
    SELECT
        workflow,
        count(DISTINCT participant_id)                                AS participants,
        count(*)                                                      AS enrollments,
        count(*) FILTER (outcome = 'met_inside')                      AS met_inside,
        count(*) FILTER (outcome = 'met_after_exit')                  AS met_after_exit,
        count(*) FILTER (outcome = 'not_met')                         AS not_met,
        count(*) FILTER (outcome = 'not_met' AND window_open)         AS not_met_window_open,
        count(*) FILTER (outcome = 'still_inside')                    AS still_inside,
        median(days_to_met)                                           AS median_days_to_met,
        avg(days_to_met)                                              AS avg_days_to_met,
        bool_and(after_exit_judged)                                   AS after_exit_tracked
    FROM {{ ref('objective_outcomes') }}
    GROUP BY workflow
)
SELECT
    f.workflow,
    f.category,
    f.field                                                      AS objective_field,
    coalesce(c.participants, 0)                                  AS participants,
    coalesce(c.enrollments, 0)                                   AS enrollments,
    coalesce(c.met_inside, 0)                                    AS met_inside,
    coalesce(c.met_after_exit, 0)                                AS met_after_exit,
    coalesce(c.met_inside + c.met_after_exit, 0)                 AS met,
    coalesce(c.not_met, 0)                                       AS not_met,
    coalesce(c.not_met_window_open, 0)                           AS not_met_window_open,
    coalesce(c.still_inside, 0)                                  AS still_inside,
    round((c.met_inside + c.met_after_exit) / c.enrollments, 4)  AS met_rate,
    round(c.median_days_to_met, 2)                               AS median_days_to_met,
    round(c.avg_days_to_met, 2)                                  AS avg_days_to_met,
    c.after_exit_tracked,
    (SELECT max(as_of) FROM {{ source('cswf', 'tick_log') }})                            AS as_of
FROM objective AS f
LEFT JOIN counted AS c USING (workflow)
ORDER BY f.workflow
