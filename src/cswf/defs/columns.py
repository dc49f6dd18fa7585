"""Column descriptions of the tables cswf writes, from docs/data-contract.md, docs/tables.md and
docs/delivery.md, so the UI shows them today. A dbt-style YAML beside a SQL model
(`sql/**/<model>.yml`) takes precedence once it exists (`metadata.column_docs`)."""

COLUMN_DOCS: dict[str, dict[str, str]] = {
    "raw_accounts": {
        "snapshot_date": "Day the snapshot describes",
        "account_id": "Stable account identifier; becomes participant_id",
        "account_name": "Display name",
        "tier": "enterprise, mid_market or smb (exactly; other values reject the file)",
        "stage": "onboarding, adoption, mature, renewal or churned (exactly)",
        "stage_entered_on": "Day the account entered its current stage",
        "arr": "Annual recurring revenue",
        "seats_purchased": "Seats in the contract",
        "seats_active": "Seats assigned to active users",
        "contract_start": "First day of the first contract (customer since)",
        "renewal_date": "Next renewal date",
        "health_score": "Health score 0–100; NULL when not scored yet",
        "nps": "Latest NPS answer 0–10; NULL when never answered",
        "nps_responded_on": "Day of the latest NPS answer",
        "open_tickets": "Open support tickets",
        "csm_name": "Customer-success manager who owns the account",
        "csm_email": "The CSM's e-mail address (tasks are assigned here)",
        "primary_contact_name": "Customer's main contact",
        "primary_contact_email": "The main contact's e-mail address (customer e-mails go here)",
        "region": "Sales region",
        "industry": "Customer industry",
        "time_zone": "IANA time zone of the customer, e.g. Europe/Berlin",
    },
    "account_facts": {
        "as_of": "The tick's logical time",
        "participant_id": "The account id, as the workflow participant",
        "account_id": "Account identifier",
        "snapshot_date": "Date of the snapshot the row comes from (latest on or before D)",
        "account_name": "From the snapshot",
        "tier": "From the snapshot",
        "stage": "From the snapshot",
        "stage_entered_on": "From the snapshot",
        "arr": "From the snapshot",
        "seats_purchased": "From the snapshot",
        "seats_active": "From the snapshot",
        "contract_start": "From the snapshot",
        "renewal_date": "From the snapshot",
        "health_score": "From the snapshot (may be NULL)",
        "nps": "Latest NPS answer 0–10 (may be NULL)",
        "nps_category": "promoter (9–10), passive (7–8), detractor (0–6); NULL without an answer",
        "nps_responded_on": "From the snapshot",
        "open_tickets": "From the snapshot",
        "csm_name": "From the snapshot",
        "csm_email": "From the snapshot",
        "primary_contact_name": "From the snapshot",
        "primary_contact_email": "From the snapshot",
        "region": "From the snapshot",
        "industry": "From the snapshot",
        "time_zone": "From the snapshot (IANA name; NULL when not sent)",
        "usage_events_7d": "Events over the 7 complete days before D: [D-7, D-1]; 0 without usage",
        "usage_events_prev_7d": "Events over the week before that: [D-14, D-8]; 0 without usage",
        "usage_events_30d": "Events over [D-30, D-1]; 0 without usage",
        "active_users_7d_avg": "Average daily active users over [D-7, D-1] (days "
        "without a row count as 0)",
        "usage_events_7d_change_pct": "100 * (7d - prev_7d) / prev_7d; NULL when prev_7d is 0",
        "seat_utilisation_pct": "100 * seats_active / seats_purchased; NULL when "
        "seats_purchased is 0 or NULL",
        "days_to_renewal": "renewal_date - D (negative once past)",
        "days_in_stage": "D - stage_entered_on",
        "days_since_contract_start": "D - contract_start",
        "days_since_nps_response": "D - nps_responded_on; NULL without an answer",
        "snapshot_age_days": "D - snapshot_date: 0 when today's snapshot has arrived",
    },
    "enrollments": {
        "workflow": "workflow name",
        "participant_id": "the participant: account, contact or opportunity id (the "
        "workflow's object)",
        "enrollment_id": "workflow/participant/n, the n-th enrollment of that "
        "participant in that workflow",
        "enrollment_number": "n",
        "version": "spec version (content hash) the enrollment runs; an edit of a "
        "running workflow moves active enrollments to the new version "
        "(transition version_changed)",
        "status": "active, completed, exited",
        "entered_at": "tick of entry",
        "step": "index of the current step (= number of steps once the flow ended)",
        "step_name": "its name ((end of flow) after the last)",
        "wait_until": "when the current step may finish (the end of a delay)",
        "objective_met_at": "tick the objective was first met",
        "closed_at": "tick of completion or exit",
        "close_reason": "why it closed: reached the end of the flow (… with every "
        "milestone done), exit conditions met: …, objective met: …, "
        "workflow disabled, action k of step 's' failed to deliver "
        "and its on_error is exit",
        "requalify_armed": "has stopped qualifying since it closed (re-entry multiple needs this)",
        "milestones_started": "how many milestones (in trigger order) have their task "
        "(workflows with milestones)",
        "milestones_done": "the milestones whose task was completed",
        "current_milestone": "the first started milestone not yet done",
        "milestone_due_at": "when the current milestone is due; overdue days = a "
        "report's as-of minus this",
        "updated_at": "tick that last changed the row",
        "cohort": "in a workflow with a holdout: control (held out, receives nothing) or "
        "treatment; null otherwise and for manual deploys",
    },
    "transitions": {
        "tick": "the tick",
        "workflow": "which enrollment, under which spec version",
        "version": "which enrollment, under which spec version",
        "participant_id": "which enrollment, under which spec version",
        "enrollment_id": "which enrollment, under which spec version",
        "transition": "entered, objective_met, exited, advanced (a step ran, a delay "
        "or wait ended, a branch chose), milestone_started, "
        "milestone_done, completed, deploy_refused, remove_refused, version_changed "
        "(the spec was edited while the enrollment ran)",
        "step": "the step it concerns",
        "step_name": "the step it concerns",
        "reason": "readable: entry conditions met: (tier eq 'enterprise' and "
        "health_score dropped_below 60)",
        "evidence": "JSON of the fact values the deciding condition read: "
        '{"health_score":55.0,"tier":"enterprise"}',
    },
    "actions_outbox": {
        "action_id": "enrollment_id/s<step>.a<action>; milestone tasks "
        "enrollment_id/milestone.<name>, the workflow task "
        "enrollment_id/workflow; also the idempotency key for "
        "delivery",
        "tick": "tick that emitted it",
        "workflow": "origin",
        "version": "origin",
        "enrollment_id": "origin",
        "participant_id": "origin",
        "step": "position in the flow (milestone and workflow tasks: no step, "
        "milestone: <name> / (workflow task))",
        "step_name": "position in the flow (milestone and workflow tasks: no step, "
        "milestone: <name> / (workflow task))",
        "action_index": "position in the flow (milestone and workflow tasks: no "
        "step, milestone: <name> / (workflow task))",
        "action_type": "task, email, field_update, webhook, notification",
        "category": "the action's category (inherited from the workflow unless set)",
        "assignee": "task owner: a user; a group's tasks go to one of its members "
        "(user_groups.yaml: round robin or least loaded), or read "
        "group:<name> when no groups file exists; for other actions, "
        "the workflow owner",
        "owner_group": "the user group that owns the work, when a group does (the "
        "workflow task's payload lists the owner group as "
        "subscribers)",
        "recipient": "emails: the address (from the fact field to), or "
        "contacts:primary / contacts:role=<role> (spec to_contacts), "
        "resolved by delivery from the contacts snapshot when it "
        "sends (the addresses used: deliveries.recipients, "
        "[delivery.md](delivery.md#emails-to-contacts))",
        "due_at": "tasks: tick + due_days",
        "subject": "rendered task title / email subject / set <field>",
        "body": "rendered description / email body / new value",
        "payload": "JSON of the settings without a column of their own: tasks "
        '{"due_days", "priority", "subtasks"} (+ "references"), emails {"html", '
        '"template", "to_field"} or {"html", "template", '
        '"to_contacts"} (+ "from", "reply_to", "approval_days"), field updates '
        '{"field", "value"}',
        "status": "pending, or render_failed (then error says why)",
        "on_error": "what a failed delivery does: continue (one attempt, the flow "
        "goes on), retry (the delivery retry policy, the flow goes on "
        "meanwhile), exit (retries too; once the action has finally "
        "failed — its failed event in action_events — the enrollment "
        "exits at the next tick). See "
        "[delivery.md](delivery.md#the-life-of-an-action)",
        "error": "the template error, if any",
    },
    "workflow_summary": {
        "workflow": "from the latest spec version",
        "category": "from the latest spec version",
        "state": "from the latest spec version",
        "priority": "from the latest spec version",
        "current_version": "from the latest spec version",
        "auto_deploy": "entry conditions set, workflow enabled and not manual deploys only",
        "deployed": "enrollments ever",
        "active": "enrollments by status now",
        "completed": "enrollments by status now",
        "exited": "enrollments by status now",
        "participants": "distinct participants ever enrolled",
        "avg_days_to_complete": "mean days from entry to completion, completed enrollments",
        "objective_met": "enrollments that met the objective",
        "objective_met_rate": "objective_met / deployed (null without an objective)",
        "first_entry_at": "first and latest entry",
        "last_entry_at": "first and latest entry",
        "as_of": "latest tick in tick_log",
    },
    "deliveries": {
        "action_id": "the outbox action (actions_outbox.action_id)",
        "action_type": "email, webhook, notification, task, field_update (copied from the outbox)",
        "channel": "smtp, webhook, table, dry_run; null until first routed",
        "status": "pending, sending, sent, previewed (dry run), failed, suppressed, capped, "
        "deferred, unknown, expired, awaiting_approval, rejected, not_actioned",
        "attempts": "sends tried (an HTTP attempt may hold several tries); 0 = never "
        "handed to a sender",
        "next_attempt_at": "when a failed (retry left) or deferred row is due again; "
        "null = not scheduled (for failed: final)",
        "last_error": "why it failed / was held (quiet hours in America/New_York, "
        "daily cap of 3 …, the server's answer); credentials never "
        "appear",
        "provider_id": "the email's Message-ID, HTTP <status>, the CRM table, or the preview file",
        "sent_at": "when it was sent, or previewed by a dry run (now of that run)",
        "created_at": "when delivery first saw the action",
        "updated_at": "now of the run that last changed the row",
        "recipients": "emails: the addresses it was handed to the sender with — the "
        "resolved contacts after suppressed and capped ones were "
        "dropped, or the outbox recipient; for a suppressed, capped or "
        "deferred email, every address it resolved to; null for other "
        "actions and emails never routed",
    },
    "action_insights": {
        "emails": "email actions emitted",
        "emails_sent": "sent through a real channel",
        "emails_dry_run": '"sent" in dry run',
        "emails_delivered": "emails with at least one such event",
        "emails_opened": "emails with at least one such event",
        "emails_clicked": "emails with at least one such event",
        "emails_replied": "emails with at least one such event",
        "emails_bounced": "emails with at least one such event",
        "emails_suppressed": "held by the safety rules",
        "emails_capped": "held by the safety rules",
        "emails_failed": "failed or unknown now",
        "emails_awaiting_approval": "waiting for the owner's approval now",
        "emails_rejected": "rejected by the owner (never sent)",
        "emails_not_actioned": "not approved within approval_days (never sent)",
        "actions_failed": "actions of any type that finally failed by as_of (a "
        "failed event: retries exhausted or on_error: continue, "
        "permanent error, no recipient or contact, template not "
        "rendered, no channel)",
        "actions_retrying": "actions failed now with a retry scheduled (no failed event yet)",
        "tasks_created": "tasks exported (or previewed)",
        "tasks_completed": "tasks with a completed event",
        "tasks_overdue": "created, not completed, due before as_of",
        "field_updates_sent": "field updates exported (or previewed)",
        "webhooks_sent": "webhooks / notifications sent",
        "as_of": "the report's time",
    },
}
