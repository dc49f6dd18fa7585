"""smtp: email actions over SMTP (delivery/smtp.py). Before sending, each due email gets its
recipients (contact picks resolved from the contacts snapshot) and goes through the safety rules
(delivery/rules.py). Not idempotent: SMTP has no idempotency key, so an email a crash cut off
mid-send becomes `unknown` for a human instead of going out twice."""

from __future__ import annotations

import email.policy
from datetime import datetime

import polars as pl

from cswf.delivery.channel import Channel, DeliveryRun, Preview, Unsendable
from cswf.delivery.channels import register
from cswf.delivery.config import DeliveryConfig
from cswf.delivery.contacts import resolve_recipients
from cswf.delivery.email import InvalidEmail, compose_email, sender_headers
from cswf.delivery.model import OutboundAction, Sender
from cswf.delivery.outcomes import fail_now
from cswf.delivery.rules import SEND, email_decisions
from cswf.delivery.smtp import SmtpSender


@register
class Smtp(Channel):
    name = "smtp"
    idempotent = False
    interrupted = (
        "interrupted between handing the email to the SMTP server and recording the result: "
        "it may or may not have been sent. Check the mail server log for its Message-ID, then "
        "resolve_unknown() it as sent or pending (docs/delivery.md)")

    def sender(self, config: DeliveryConfig) -> Sender:
        return SmtpSender(config)

    def screen(self, run: DeliveryRun, rows: pl.DataFrame, sender: Sender) -> pl.DataFrame:
        """Resolve the emails' recipients and apply the safety rules: the emails that go on,
        each with the `recipients` to send to; the others are failed or held."""
        con, now = run.con, run.now
        targets, unresolved = resolve_recipients(con, rows, now)
        fail_now(con, rows.join(unresolved, on="action_id", how="inner", maintain_order="left"),
                 run.config, now, run.report)
        rows = rows.join(unresolved, on="action_id", how="anti")
        decisions = email_decisions(con, rows, run.config, now, run.time_zones, targets)
        held = decisions.filter(pl.col("decision") != SEND)  # read by DuckDB below
        con.execute(
            "UPDATE deliveries AS d SET status = h.decision, next_attempt_at = h.next_attempt_at, "
            "last_error = h.reason, channel = $channel, updated_at = $now, "
            "recipients = CASE WHEN len(h.recipients) > 0 THEN h.recipients END FROM held AS h "
            "WHERE d.action_id = h.action_id",
            {"channel": sender.channel, "now": now},
        ).fetchall()
        run.report.outcomes.update(held["decision"].to_list())
        return rows.filter(~pl.col("action_id").is_in(held["action_id"].implode())).drop(
            "recipients").join(decisions.select("action_id", "recipients"), on="action_id",
                               how="left", maintain_order="left")

    def preview(self, action: OutboundAction, config: DeliveryConfig, now: datetime) -> Preview:
        """The exact .eml SMTP would carry, after the same checks."""
        try:
            message = compose_email(action.action_id, action.addresses, action.subject,
                                    action.body, bool(action.payload.get("html")), config, now,
                                    sender_headers(action.payload, config, action.participant_id))
        except InvalidEmail as exc:
            raise Unsendable(str(exc)) from exc
        return Preview("eml", message.as_bytes(policy=email.policy.SMTP),
                       str(message["Message-ID"]))
