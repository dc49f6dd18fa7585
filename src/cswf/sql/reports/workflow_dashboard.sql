-- One row per enrollment (Natero's workflow dashboard): the account (for contact and
-- opportunity workflows, the participant's account), workflow, status, start and completion
-- dates, the step it is at now and when that step is due, the objective's outcome, and for
-- workflows with milestones the current milestone and how late the milestones are, all as of
-- the last tick (milestone_history, objective_outcomes).
{% from "macros/latest_spec.sql" import latest_spec %}
WITH last_tick AS (
    SELECT max(as_of) AS as_of FROM {{ source('cswf', 'tick_log') }}
),
workflow_category AS (  -- a workflow's category is its latest spec version's
    SELECT workflow, category FROM ({{ latest_spec() }})
),
latest_facts AS (
    SELECT participant_id AS account_id, account_name, csm_name, tier
    FROM {{ source('cswf', 'account_facts') }}
    WHERE as_of = (SELECT max(as_of) FROM {{ source('cswf', 'account_facts') }})
),
accounts_of AS (  -- the account of each contact and opportunity (its latest snapshot)
    SELECT 'contact' AS object, contact_id AS participant_id,
           arg_max(account_id, snapshot_date) AS account_id
    FROM {{ source('landing', 'raw_contacts') }} GROUP BY contact_id
    UNION ALL
    SELECT 'opportunity', opportunity_id, arg_max(account_id, snapshot_date)
    FROM {{ source('landing', 'raw_opportunities') }} GROUP BY opportunity_id
),
participants AS (  -- what each workflow runs on: account, contact or opportunity
    SELECT workflow, version, spec_json ->> '$.object' AS object FROM {{ source('cswf', 'workflow_versions') }}
),
milestones AS (  -- every milestone of the enrollment, not only the current one
    SELECT enrollment_id,
           count(*) FILTER (WHERE days_early_late > 0)                     AS milestones_overdue,
           coalesce(sum(days_early_late) FILTER (WHERE days_early_late > 0), 0)
                                                                           AS milestone_overdue_days
    FROM {{ ref('milestone_history') }}
    GROUP BY enrollment_id
)
SELECT
    CASE WHEN p.object = 'account' THEN e.participant_id
         ELSE a.account_id END                                      AS account_id,
    f.account_name,
    f.tier,
    f.csm_name                                                      AS csm,
    c.category,
    e.workflow,
    p.object,
    e.participant_id,
    e.enrollment_id,
    e.enrollment_number,
    e.version,
    e.status,
    e.entered_at                                                    AS start_date,
    CASE WHEN e.status = 'completed' THEN e.closed_at END           AS completion_date,
    CASE WHEN e.status = 'exited' THEN e.closed_at END              AS exit_date,
    e.close_reason,
    CASE WHEN e.status = 'active' THEN e.step_name END              AS current_step,
    CASE WHEN e.status = 'active' THEN e.wait_until END             AS current_step_due,
    e.objective_met_at,
    o.outcome                                                       AS objective_outcome,
    len(e.milestones_done)                                          AS milestones_done,
    CASE WHEN e.status = 'active' THEN e.current_milestone END      AS current_milestone,
    CASE WHEN e.status = 'active' THEN e.milestone_due_at END       AS milestone_due,
    CASE WHEN e.status = 'active' AND e.milestone_due_at IS NOT NULL
         THEN date_diff('second', e.milestone_due_at, t.as_of) / 86400.0 END
                                                                    AS current_milestone_days_late,
    coalesce(m.milestones_overdue, 0)                                  AS milestones_overdue,
    coalesce(m.milestone_overdue_days, 0.0)                            AS milestone_overdue_days,
    date_diff('second', e.entered_at, coalesce(e.closed_at, t.as_of)) / 86400.0
                                                                    AS days_in_workflow
FROM {{ source('cswf', 'enrollments') }} AS e
CROSS JOIN last_tick AS t
LEFT JOIN participants AS p USING (workflow, version)
LEFT JOIN workflow_category AS c USING (workflow)
LEFT JOIN accounts_of AS a ON a.object = p.object AND a.participant_id = e.participant_id
LEFT JOIN latest_facts AS f
    ON f.account_id = CASE WHEN p.object = 'account' THEN e.participant_id ELSE a.account_id END
LEFT JOIN milestones AS m USING (enrollment_id)
LEFT JOIN {{ ref('objective_outcomes') }} AS o USING (enrollment_id)
ORDER BY e.workflow, e.participant_id, e.enrollment_number
