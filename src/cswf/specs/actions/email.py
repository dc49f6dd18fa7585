"""email: one email to a fact field's address or to contacts, sent over SMTP (`smtp` channel)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field, model_validator

from cswf.specs.action import (
    ActionProblem,
    ActionSpec,
    Outbox,
    OutboxContext,
    owner_columns,
    settings_json,
)
from cswf.specs.actions import register
from cswf.specs.common import Strict, unknown_field

HTML_TEMPLATES = (".html", ".html.j2")  # a template file named so escapes fact values as HTML


class ContactPick(Strict):
    """Recipients from the contacts snapshot: the account's primary contact, or every contact
    with a role. Resolved by delivery, at send time, from the latest snapshot."""

    primary: bool = False
    role: str | None = None

    @model_validator(mode="after")
    def _one_pick(self) -> ContactPick:
        if self.primary == (self.role is not None):
            raise ValueError("to_contacts needs exactly one of: primary: true, role")
        return self

    def recipient(self) -> str:
        return "contacts:primary" if self.primary else f"contacts:role={self.role}"


@register
class EmailAction(ActionSpec):
    results = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "dropped",
               "not_delivered", "not_opened", "not_clicked", "not_replied")
    delivered_by = "smtp"

    type: Literal["email"]
    to: str = Field(
        default="primary_contact_email", description="Fact field holding the recipient address."
    )
    to_contacts: ContactPick | None = Field(
        default=None, description="Instead of `to`: contacts from the contacts snapshot."
    )
    subject: str = Field(description="Jinja2 template for the subject line.")
    template: str | None = Field(
        default=None, description="Jinja2 template file for the body, relative to the spec."
    )
    body: str | None = Field(default=None, description="Inline Jinja2 body (or use template).")

    @model_validator(mode="after")
    def _one_body(self) -> EmailAction:
        if (self.template is None) == (self.body is None):
            raise ValueError("an email needs exactly one of: template, body")
        if self.to_contacts is not None and "to" in self.model_fields_set:
            raise ValueError("an email needs at most one of: to, to_contacts")
        return self

    @property
    def to_field(self) -> str | None:
        """The fact field holding the address, unless contacts are picked instead."""
        return None if self.to_contacts is not None else self.to

    @property
    def html(self) -> bool:
        return (self.template or "").endswith(HTML_TEMPLATES)

    def templates(self, folder: Path) -> dict[str, str]:
        if self.template is None:
            return {"subject": self.subject, "body": self.body or ""}
        path = (folder / self.template).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise ActionProblem("template", "the template must live with the specs")
        if not path.is_file():
            raise ActionProblem("template", f"no template file {self.template}")
        return {"subject": self.subject, "body": path.read_text()}

    def fact_fields(self) -> set[str]:
        return set() if self.to_field is None else {self.to_field}

    def field_problems(self, participant: str, fact_fields: Mapping[str, Any]
                       ) -> list[tuple[str, str]]:
        problems = []
        if self.to_contacts and participant != "account":
            problems.append(("to_contacts", f"to_contacts picks an account's contacts; in a "
                                            f"{participant} workflow, address the email with "
                                            f"`to` (a fact field)"))
        if self.to_field is not None and self.to_field not in fact_fields:
            problems.append(("to", unknown_field(self.to, fact_fields)))
        return problems

    def outbox(self, context: OutboxContext) -> Outbox:
        subject, body = context.text("subject"), context.text("body", autoescape=self.html)
        return Outbox(
            columns={
                **owner_columns(context.owner),
                "recipient": pl.col(self.to_field).cast(pl.String)
                if self.to_field is not None
                else pl.lit(self.to_contacts.recipient() if self.to_contacts else None),
                "subject": subject[0],
                "body": body[0],
                "payload": settings_json(
                    to_field=self.to_field, template=self.template, html=self.html,
                    to_contacts=self.to_contacts.model_dump(exclude_defaults=True)
                    if self.to_contacts else None,
                ),
            },
            errors=[subject[1], body[1]],
        )
