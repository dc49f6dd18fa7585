-- Action insights per workflow and step (Natero / Catalyst): what the emails and tasks did.
-- A report with a parameter (config.meta.cswf.params in its YAML): run per call, never stored
-- by build_reports. Everything as of $as_of: actions emitted, sends and events up to then. An event counts once
-- per action (an email opened three times is one opened email). A delivery that finally failed
-- (retries exhausted, permanent error, no recipient, template not rendered) has a `failed` event.
WITH actions AS (
    SELECT o.action_id, o.workflow, o.step, o.step_name, o.action_type, o.due_at,
           d.status, d.channel, d.next_attempt_at,
           d.sent_at IS NOT NULL AND d.sent_at <= $as_of AND d.status IN ('sent', 'previewed')
               AS sent  -- a dry run's previews count as what it would have sent
    FROM {{ source('cswf', 'actions_outbox') }} AS o
    LEFT JOIN {{ source('cswf', 'deliveries') }} AS d USING (action_id)
    WHERE o.tick <= $as_of
),
results AS (
    SELECT action_id,
           bool_or(event_type = 'delivered') AS delivered,
           bool_or(event_type = 'opened') AS opened,
           bool_or(event_type = 'clicked') AS clicked,
           bool_or(event_type = 'replied') AS replied,
           bool_or(event_type = 'bounced') AS bounced,
           bool_or(event_type = 'completed') AS completed,
           bool_or(event_type = 'failed') AS failed
    FROM {{ source('cswf', 'action_events') }}
    WHERE occurred_at <= $as_of
    GROUP BY action_id
),
joined AS (
    SELECT a.*, coalesce(r.delivered, false) AS delivered, coalesce(r.opened, false) AS opened,
           coalesce(r.clicked, false) AS clicked, coalesce(r.replied, false) AS replied,
           coalesce(r.bounced, false) AS bounced, coalesce(r.completed, false) AS completed,
           coalesce(r.failed, false) AS failed
    FROM actions AS a LEFT JOIN results AS r USING (action_id)
)
SELECT workflow, step, step_name,
       count(*) FILTER (action_type = 'email') AS emails,
       count(*) FILTER (action_type = 'email' AND sent AND status = 'sent') AS emails_sent,
       count(*) FILTER (action_type = 'email' AND sent AND status = 'previewed') AS emails_dry_run,
       count(*) FILTER (action_type = 'email' AND delivered) AS emails_delivered,
       count(*) FILTER (action_type = 'email' AND opened) AS emails_opened,
       count(*) FILTER (action_type = 'email' AND clicked) AS emails_clicked,
       count(*) FILTER (action_type = 'email' AND replied) AS emails_replied,
       count(*) FILTER (action_type = 'email' AND bounced) AS emails_bounced,
       count(*) FILTER (action_type = 'email' AND status = 'suppressed') AS emails_suppressed,
       count(*) FILTER (action_type = 'email' AND status = 'capped') AS emails_capped,
       count(*) FILTER (action_type = 'email' AND status IN ('failed', 'unknown'))
           AS emails_failed,
       count(*) FILTER (action_type = 'email' AND status = 'awaiting_approval')
           AS emails_awaiting_approval,
       count(*) FILTER (action_type = 'email' AND status = 'rejected') AS emails_rejected,
       count(*) FILTER (action_type = 'email' AND status = 'not_actioned') AS emails_not_actioned,
       count(*) FILTER (action_type = 'task' AND sent) AS tasks_created,
       count(*) FILTER (action_type = 'task' AND completed) AS tasks_completed,
       count(*) FILTER (action_type = 'task' AND sent AND NOT completed AND due_at < $as_of)
           AS tasks_overdue,
       count(*) FILTER (action_type = 'field_update' AND sent) AS field_updates_sent,
       count(*) FILTER (action_type NOT IN ('email', 'task', 'field_update') AND sent)
           AS webhooks_sent,
       count(*) FILTER (failed) AS actions_failed,
       count(*) FILTER (NOT failed AND status = 'failed' AND next_attempt_at IS NOT NULL)
           AS actions_retrying,
       CAST($as_of AS TIMESTAMP) AS as_of
FROM joined
GROUP BY workflow, step, step_name
ORDER BY workflow, step, step_name
