-- Per workflow and step of its flow (steps in flow order, branch paths included, then the end
-- of the flow): how many enrollments reached the step, how many wait there now (in a delay or a
-- wait; at the end of the flow: for their milestones), how many passed it and how many exited
-- there, by exit reason. As of the last tick. Every enrollment at a step is exactly one of
-- waiting now, passed or exited there, so reached = waiting_now + passed + exited. A holdout's
-- control group (enrollments.cohort = 'control') is not in the funnel: it runs no step.
{% from "macros/latest_spec.sql" import latest_spec %}
WITH latest_spec AS (
    SELECT workflow, category,
           list_filter(structure, lambda line: regexp_matches(line, '^\w+ step ''')) AS step_lines
    FROM ({{ latest_spec() }})
),
steps AS (  -- the flow's steps in order (their index is the enrollment's `step`), then the end
    SELECT workflow, category,
           CAST(generate_subscripts(step_lines, 1) - 1 AS INTEGER)  AS step,
           unnest(step_lines)                                      AS line
    FROM latest_spec
),
flow AS (
    SELECT workflow, category, step,
           regexp_extract(line, '^\w+ step ''(.*)''$', 1) AS step_name,
           regexp_extract(line, '^(\w+) step', 1)         AS step_kind
    FROM steps
    UNION ALL
    SELECT workflow, category, CAST(len(step_lines) AS INTEGER), '(end of flow)', 'end'
    FROM latest_spec
),
passed AS (  -- moved on from the step (the end of the flow is passed by completing)
    SELECT workflow, step, count(DISTINCT enrollment_id) AS passed
    FROM {{ source('cswf', 'transitions') }}
    WHERE transition = 'advanced'
    GROUP BY ALL
    UNION ALL
    SELECT workflow, step, count(*)
    FROM {{ source('cswf', 'enrollments') }}
    WHERE status = 'completed' AND cohort IS DISTINCT FROM 'control'
    GROUP BY ALL
),
still_there AS (  -- where active and exited enrollments are now
    SELECT
        workflow,
        step,
        count(*) FILTER (status = 'active')                                AS waiting_now,
        count(*) FILTER (status = 'exited')                                AS exited,
        count(*) FILTER (status = 'exited'
                         AND close_reason LIKE 'exit conditions met%')     AS exited_exit_conditions,
        count(*) FILTER (status = 'exited'
                         AND close_reason LIKE 'objective met%')           AS exited_objective_met,
        count(*) FILTER (status = 'exited'
                         AND close_reason = 'workflow disabled')           AS exited_workflow_disabled,
        count(*) FILTER (status = 'exited'
                         AND close_reason LIKE 'action % failed to deliver%')
                                                                           AS exited_failed_delivery
    FROM {{ source('cswf', 'enrollments') }}
    WHERE cohort IS DISTINCT FROM 'control'  -- a holdout's control group runs no step
    GROUP BY ALL
)
SELECT
    f.workflow,
    f.category,
    f.step,
    f.step_name,
    f.step_kind,
    coalesce(s.waiting_now, 0) + coalesce(p.passed, 0) + coalesce(s.exited, 0)  AS reached,
    coalesce(s.waiting_now, 0)                                                  AS waiting_now,
    coalesce(p.passed, 0)                                                       AS passed,
    coalesce(s.exited, 0)                                                       AS exited,
    coalesce(s.exited_exit_conditions, 0)                                       AS exited_exit_conditions,
    coalesce(s.exited_objective_met, 0)                                         AS exited_objective_met,
    coalesce(s.exited_workflow_disabled, 0)                                     AS exited_workflow_disabled,
    coalesce(s.exited_failed_delivery, 0)                                       AS exited_failed_delivery,
    coalesce(s.exited, 0) - coalesce(s.exited_exit_conditions, 0)
        - coalesce(s.exited_objective_met, 0) - coalesce(s.exited_workflow_disabled, 0)
        - coalesce(s.exited_failed_delivery, 0)                                 AS exited_other,
    (SELECT max(as_of) FROM {{ source('cswf', 'tick_log') }})                                           AS as_of
FROM flow AS f
LEFT JOIN passed AS p USING (workflow, step)
LEFT JOIN still_there AS s USING (workflow, step)
ORDER BY f.workflow, f.step
