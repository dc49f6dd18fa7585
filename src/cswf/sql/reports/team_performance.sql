-- How the team does its milestones, per period (day, ISO week from Monday, month; UTC) x
-- workflow x milestone x assignee (the CSM or group member owning the milestone's task), with
-- '(all)' rows across milestones, across assignees, and across both.
-- Each milestone counts in the period where something happened to it: `started` where its task
-- was created; `completed`, days to complete, ahead of target and done late where it was done;
-- a milestone still open past its due time is overdue in the period it fell due (its days
-- overdue counted up to the last tick). A full recomputation from {{ ref('milestone_history') }}, so any
-- past period can be read.
WITH happenings AS (
    SELECT category, workflow, milestone, assignee, started_at AS happened_at,
           'started' AS happening, NULL AS days_to_complete, NULL AS days_early_late
    FROM {{ ref('milestone_history') }}
    WHERE started_at IS NOT NULL
    UNION ALL
    SELECT category, workflow, milestone, assignee, completed_at,
           'completed', days_to_complete, days_early_late
    FROM {{ ref('milestone_history') }}
    WHERE completed_at IS NOT NULL
    UNION ALL
    SELECT category, workflow, milestone, assignee, due_at,
           'still_overdue', NULL, days_early_late
    FROM {{ ref('milestone_history') }}
    WHERE status = 'overdue'
),
periods AS (
    SELECT * FROM (VALUES ('day'), ('week'), ('month')) AS p(period_type)
),
dated AS (
    SELECT
        p.period_type,
        CAST(CASE p.period_type
                 WHEN 'day' THEN date_trunc('day', h.happened_at)
                 WHEN 'week' THEN date_trunc('week', h.happened_at)
                 ELSE date_trunc('month', h.happened_at)
             END AS DATE) AS period_start,
        h.*
    FROM happenings AS h CROSS JOIN periods AS p
)
SELECT
    period_type,
    period_start,
    category,
    workflow,
    CASE WHEN grouping(milestone) = 1 THEN '(all)' ELSE milestone END        AS milestone,
    CASE WHEN grouping(assignee) = 1 THEN '(all)' ELSE assignee END          AS assignee,
    count(*) FILTER (happening = 'started')                                  AS started,
    count(*) FILTER (happening = 'completed')                                AS completed,
    round(avg(days_to_complete), 2)                                          AS avg_days_to_complete,
    round(median(days_to_complete), 2)                                       AS median_days_to_complete,
    round(quantile_cont(days_to_complete, 0.9), 2)                           AS p90_days_to_complete,
    count(*) FILTER (days_early_late > 0)                                    AS overdue,
    round(coalesce(sum(days_early_late) FILTER (days_early_late > 0), 0), 2) AS overdue_days,
    count(*) FILTER (happening = 'completed' AND days_early_late < 0)        AS ahead,
    round(coalesce(-sum(days_early_late)
                   FILTER (happening = 'completed' AND days_early_late < 0), 0), 2)
                                                                             AS ahead_days,
    round(count(*) FILTER (happening = 'completed' AND days_early_late <= 0)
          / nullif(count(*) FILTER (happening IN ('completed', 'still_overdue')), 0), 4)
                                                                             AS on_time_rate
FROM dated
GROUP BY GROUPING SETS (
    (period_type, period_start, category, workflow, milestone, assignee),
    (period_type, period_start, category, workflow, milestone),
    (period_type, period_start, category, workflow, assignee),
    (period_type, period_start, category, workflow)
)
ORDER BY period_type, period_start, workflow, milestone, assignee
