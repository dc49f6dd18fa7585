"""Emails sent as the account's CSM or the workflow's owner: the From and Reply-To headers a
real SMTP server on 127.0.0.1 receives, and the fallback to the configured sender."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from test_delivery_servers import (
    NOW,
    SmtpRecorder,
    add_actions,
    deliveries,
    email_row,
    make_config,
    warehouse,
)

from cswf.delivery import default_senders, deliver

Smtp = tuple[SmtpRecorder, int]


def as_sender(n: int, participant: str, **senders: Any) -> dict[str, Any]:
    row = email_row(n, f"{participant}@customer.test", participant=participant)
    return {**row, "payload": json.dumps({"html": False, "template": None,
                                          "to_field": "email", **senders})}


def test_from_sets_from_and_reply_to_and_reply_to_alone_keeps_the_configured_from(
        tmp_path: Path, smtp: Smtp) -> None:
    recorder, port = smtp
    con, config = warehouse(), make_config(tmp_path, smtp_port=port)
    add_actions(con, [
        as_sender(0, "ann", **{"from": {"email": "ana@acme.example", "name": "Ana Ortiz"}}),
        as_sender(1, "bob", reply_to={"email": "ana@acme.example", "name": "Ana Ortiz"}),
        as_sender(2, "cat", **{"from": {"email": "ana@acme.example", "name": None},
                               "reply_to": {"email": "help@acme.example", "name": "Help"}}),
        email_row(3, "dan@customer.test", participant="dan"),
    ])
    report = deliver(con, default_senders(config), config, NOW)
    assert dict(report.outcomes) == {"sent": 4} and not report.errors
    headers = {m.rcpt_tos[0]: (m.message["From"], m.message["Reply-To"], m.mail_from)
               for m in recorder.messages}
    assert headers == {
        "ann@customer.test": ("Ana Ortiz <ana@acme.example>", "Ana Ortiz <ana@acme.example>",
                              "cs@vendor.test"),
        "bob@customer.test": ("CS Team <cs@vendor.test>", "Ana Ortiz <ana@acme.example>",
                              "cs@vendor.test"),
        "cat@customer.test": ("ana@acme.example", "Help <help@acme.example>", "cs@vendor.test"),
        "dan@customer.test": ("CS Team <cs@vendor.test>", None, "cs@vendor.test"),
    }
    assert all(row["last_error"] is None for row in deliveries(con).values())


def test_a_missing_or_bad_address_falls_back_to_the_configured_sender_and_says_so(
        tmp_path: Path, smtp: Smtp) -> None:
    recorder, port = smtp
    con, config = warehouse(), make_config(tmp_path, smtp_port=port)
    add_actions(con, [
        as_sender(0, "eve", **{"from": {"email": None, "name": "Ana Ortiz"}}),
        as_sender(1, "fay", **{"from": {"email": "ana@acme.example\r\nBcc: x@evil.test",
                                        "name": None},
                               "reply_to": {"email": "", "name": None}}),
        as_sender(2, "gil", **{"from": {"email": "ana@acme.example", "name": "Ana Ortiz"},
                               "reply_to": {"email": None, "name": None}}),
    ])
    report = deliver(con, default_senders(config), config, NOW)
    assert dict(report.outcomes) == {"sent": 3} and not report.errors
    assert [(m.message["From"], m.message["Reply-To"], m.message["Bcc"])
            for m in recorder.messages] == [("CS Team <cs@vendor.test>", None, None)] * 2 + [
        ("Ana Ortiz <ana@acme.example>", "Ana Ortiz <ana@acme.example>", None)]
    rows = deliveries(con)
    assert rows["onboarding/eve/1/s0.a0"]["status"] == "sent"
    assert rows["onboarding/eve/1/s0.a0"]["last_error"] == (
        "from: no address for eve; sent from the configured sender")
    assert rows["onboarding/fay/1/s0.a1"]["last_error"] == (
        "from: no valid address ('ana@acme.example\\r\\nBcc: x@evil.test') for fay; sent from "
        "the configured sender; reply_to: no address for fay; no Reply-To")
    assert rows["onboarding/gil/1/s0.a2"]["last_error"] == (
        "reply_to: no address for gil; Reply-To is the From")


def test_a_dry_run_previews_the_email_as_the_csm(tmp_path: Path) -> None:
    con, config = warehouse(), make_config(tmp_path, dry_run=True)
    add_actions(con, [as_sender(0, "ann", **{"from": {"email": "ana@acme.example",
                                                      "name": "Ana Ortiz"}})])
    assert dict(deliver(con, {}, config, NOW).outcomes) == {"previewed": 1}
    (eml,) = (tmp_path / "preview").rglob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert (message["From"], message["Reply-To"]) == ("Ana Ortiz <ana@acme.example>",
                                                      "Ana Ortiz <ana@acme.example>")
