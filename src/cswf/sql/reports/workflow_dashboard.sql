-- One row per enrollment (Natero's workflow dashboard): account, workflow, status, start and
-- completion dates, the step it is at now and when that step is due, and for workflows with
-- milestones the current milestone, its due date and how many days it is overdue as of the
-- last tick.
WITH latest_facts AS (
    SELECT participant_id, account_name, csm_name, tier
    FROM {{ source('cswf', 'account_facts') }}
    WHERE as_of = (SELECT max(as_of) FROM {{ source('cswf', 'account_facts') }})
)
SELECT
    e.participant_id                                  AS account_id,
    f.account_name,
    f.tier,
    f.csm_name                                        AS csm,
    e.workflow,
    e.enrollment_id,
    e.enrollment_number,
    e.version,
    e.status,
    e.entered_at                                      AS start_date,
    CASE WHEN e.status = 'completed' THEN e.closed_at END AS completion_date,
    CASE WHEN e.status = 'exited' THEN e.closed_at END    AS exit_date,
    e.close_reason,
    CASE WHEN e.status = 'active' THEN e.step_name END    AS current_step,
    CASE WHEN e.status = 'active' THEN e.wait_until END   AS current_step_due,
    e.objective_met_at,
    len(e.milestones_done)                            AS milestones_done,
    CASE WHEN e.status = 'active' THEN e.current_milestone END AS current_milestone,
    CASE WHEN e.status = 'active' THEN e.milestone_due_at END  AS milestone_due,
    CASE WHEN e.status = 'active' AND e.milestone_due_at IS NOT NULL THEN
        greatest(0, date_diff('second', e.milestone_due_at,
                              (SELECT max(as_of) FROM {{ source('cswf', 'tick_log') }})) / 86400.0)
    END                                               AS milestone_overdue_days,
    date_diff('second', e.entered_at,
              coalesce(e.closed_at, (SELECT max(as_of) FROM {{ source('cswf', 'tick_log') }}))) / 86400.0
                                                      AS days_in_workflow
FROM {{ source('cswf', 'enrollments') }} AS e
LEFT JOIN latest_facts AS f USING (participant_id)
ORDER BY e.workflow, e.participant_id, e.enrollment_number
