-- One row per milestone of each enrollment of a workflow with milestones, as of the last tick:
-- when its task was created (started), when it is due, when it was done (the tick that saw its
-- task completed), who owns it, and how many days early (negative) or late (positive) it was
-- done. A milestone still open past its due time is overdue by the days since it was due.
{% from "macros/latest_spec.sql" import latest_spec %}
WITH last_tick AS (
    SELECT max(as_of) AS as_of FROM {{ source('cswf', 'tick_log') }}
),
workflow_category AS (  -- a workflow's category is its latest spec version's
    SELECT workflow, category FROM ({{ latest_spec() }})
),
milestone_lists AS (  -- each spec version's milestones, as written
    SELECT workflow, version,
           json_transform(spec_json -> '$.milestones',
                          '[{"name": "VARCHAR", "trigger_days": "INTEGER",
                             "due_days": "INTEGER"}]') AS milestones
    FROM {{ source('cswf', 'workflow_versions') }}
),
planned AS (  -- one row per milestone, numbered in the order they start (trigger day, then
              -- as written)
    SELECT workflow, version, m.name AS milestone, m.trigger_days, m.due_days,
           row_number() OVER (PARTITION BY workflow, version
                              ORDER BY m.trigger_days, written) AS milestone_order
    FROM (SELECT workflow, version, unnest(milestones) AS m,
                 generate_subscripts(milestones, 1) AS written
          FROM milestone_lists)
),
started AS (  -- the milestone's task, created when the milestone started
    SELECT action_id, tick AS started_at, due_at, assignee, owner_group
    FROM {{ source('cswf', 'actions_outbox') }}
    WHERE action_id LIKE '%/milestone.%'
),
done AS (  -- the tick that saw the milestone's task completed
    SELECT enrollment_id, evidence ->> 'milestone' AS milestone, min(tick) AS completed_at
    FROM {{ source('cswf', 'transitions') }}
    WHERE transition = 'milestone_done'
    GROUP BY ALL
),
milestones AS (
    SELECT
        e.workflow,
        c.category,
        e.enrollment_id,
        e.participant_id,
        e.status                                               AS enrollment_status,
        p.milestone,
        p.milestone_order,
        p.trigger_days,
        p.due_days,
        e.entered_at,
        s.started_at,
        coalesce(s.due_at, e.entered_at + to_days(p.due_days)) AS due_at,
        d.completed_at,
        s.assignee,
        s.owner_group
    FROM {{ source('cswf', 'enrollments') }} AS e
    JOIN planned AS p USING (workflow, version)
    LEFT JOIN workflow_category AS c USING (workflow)
    LEFT JOIN started AS s ON s.action_id = e.enrollment_id || '/milestone.' || p.milestone
    LEFT JOIN done AS d ON d.enrollment_id = e.enrollment_id AND d.milestone = p.milestone
),
judged AS (
    SELECT
        m.*,
        CASE
            WHEN m.completed_at < m.due_at THEN 'ahead'
            WHEN m.completed_at = m.due_at THEN 'on_time'
            WHEN m.completed_at > m.due_at THEN 'late'
            WHEN m.enrollment_status <> 'active' THEN 'dropped'
            WHEN m.started_at IS NULL THEN 'not_started'
            WHEN m.due_at < t.as_of THEN 'overdue'
            ELSE 'open'
        END AS status,
        t.as_of
    FROM milestones AS m, last_tick AS t
)
SELECT
    workflow,
    category,
    enrollment_id,
    participant_id,
    enrollment_status,
    milestone,
    CAST(milestone_order AS INTEGER)                                 AS milestone_order,
    trigger_days,
    due_days,
    entered_at,
    started_at,
    due_at,
    completed_at,
    assignee,
    owner_group,
    date_diff('second', started_at, completed_at) / 86400.0         AS days_to_complete,
    CASE
        WHEN completed_at IS NOT NULL THEN date_diff('second', due_at, completed_at) / 86400.0
        WHEN status = 'overdue' THEN date_diff('second', due_at, as_of) / 86400.0
    END                                                              AS days_early_late,
    status,
    as_of
FROM judged
ORDER BY workflow, enrollment_id, milestone_order
