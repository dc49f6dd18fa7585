"""email: one email to a fact field's address or to contacts, sent over SMTP (`smtp` channel)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
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
from cswf.specs.common import MaybeInt, Owner, Strict, unknown_field

HTML_TEMPLATES = (".html", ".html.j2")  # a template file named so escapes fact values as HTML
APPROVAL_DAYS = 3  # how long an email waits for its owner's approval, unless the spec says


def with_senders(settings: pl.Expr, senders: dict[str, pl.Expr]) -> pl.Expr:
    """The settings JSON with per-participant sender objects added (`"from": {...}`)."""
    if not senders:
        return settings
    parts: list[pl.Expr] = [settings.str.strip_suffix("}")]
    for key, column in senders.items():
        parts += [pl.lit(f', "{key}": '), column.struct.json_encode()]
    return pl.concat_str([*parts, pl.lit("}")])


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


# `from: csm`: the account's CSM, read from these fact fields (the accounts snapshot).
CSM_FIELDS = ("csm_email", "csm_name")
_ADDRESS = re.compile(r"[^@\s<>,]+@[^@\s<>,]+")


class Sender(Strict):
    """Whom an email is from (or whom replies go to): `csm` (the account's CSM), `owner` (the
    workflow's owner), a fixed address, or a fact field holding one per participant."""

    pick: Literal["csm", "owner"] | None = Field(
        default=None, description="Written as the bare word: `from: csm`, `from: owner`.")
    email: str | None = Field(default=None, description="A fixed address, e.g. cs@acme.example.")
    name: str | None = Field(default=None, description="The display name with `email`.")
    field: str | None = Field(default=None, description="Fact field holding the address.")
    name_field: str | None = Field(default=None, description="Fact field holding the name.")

    @model_validator(mode="before")
    @classmethod
    def _word(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in ("csm", "owner"):
                raise ValueError(f"'{value}' is not a sender; write csm, owner, {{email: ..., "
                                 f"name: ...}} or {{field: ..., name_field: ...}}")
            return {"pick": value}
        return value

    @model_validator(mode="after")
    def _one_address(self) -> Sender:
        if self.pick is not None:
            if self.model_fields_set != {"pick"}:
                raise ValueError("csm and owner are written alone (from: csm)")
            return self
        if (self.email is None) == (self.field is None):
            raise ValueError("a sender needs exactly one of: email, field (or write csm, owner)")
        if self.email is not None and not _ADDRESS.fullmatch(self.email):
            raise ValueError(f"'{self.email}' is not an email address (like cs@acme.example)")
        if self.name is not None and self.field is not None:
            raise ValueError("name goes with email; with field, use name_field")
        if any(c in (self.name or "") for c in "\r\n<>\""):
            raise ValueError("a sender name may not hold line breaks, quotes or angle brackets")
        return self

    def fields(self) -> set[str]:
        if self.pick == "csm":
            return set(CSM_FIELDS)
        return {f for f in (self.field, self.name_field) if f is not None}

    def resolved(self, owner: Owner) -> Sender | None:
        """`csm` and `owner` as the fields or address they stand for; None: the workflow's
        owner is a group, which has no address (the configured sender is used)."""
        if self.pick == "csm":
            return Sender(field=CSM_FIELDS[0], name_field=CSM_FIELDS[1])
        if self.pick == "owner":
            if owner.field is not None:
                return Sender(field=owner.field)
            # A login is no address: unchecked here, delivery falls back and says so.
            return None if owner.user is None else Sender.model_construct(email=owner.user)
        return self


def sender_column(pick: Sender | None, owner: Owner) -> pl.Expr:
    """Per participant: {"email", "name"} of the sender, or nulls (the configured sender)."""
    sender = None if pick is None else pick.resolved(owner)
    if sender is None or (sender.email is None and sender.field is None):
        email, name = pl.lit(None, dtype=pl.String), pl.lit(None, dtype=pl.String)
    else:
        email = (pl.col(sender.field).cast(pl.String) if sender.field
                 else pl.lit(sender.email, dtype=pl.String))
        name = (pl.col(sender.name_field).cast(pl.String) if sender.name_field
                else pl.lit(sender.name, dtype=pl.String))
    return pl.struct(email.alias("email"), name.alias("name"))


@register
class EmailAction(ActionSpec):
    results = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "dropped",
               "not_delivered", "not_opened", "not_clicked", "not_replied",
               "approved", "rejected", "not_actioned")
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
    sender: Sender | None = Field(
        default=None, alias="from",
        description="Send as: csm (the account's CSM: csm_email, csm_name), owner (the "
                    "workflow's owner), {email, name} or {field, name_field}. Default: the "
                    "configured sender (delivery.smtp.from_address). Also the Reply-To.",
    )
    reply_to: Sender | None = Field(
        default=None,
        description="Replies go to (same picks as `from`), while From stays as it is.",
    )
    require_approval: bool = Field(
        default=False,
        description="Hold the email until its owner approves it (an `approved` action event); "
                    "`rejected` means it is never sent.",
    )
    approval_days: MaybeInt = Field(
        default=None, ge=1, le=90,
        description="Days to wait for approval (default 3); then the result is not_actioned "
                    "and the email is never sent.",
    )

    @model_validator(mode="after")
    def _one_body(self) -> EmailAction:
        if self.approval_days is not None and not self.require_approval:
            raise ValueError("approval_days needs require_approval: true")
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

    def senders(self) -> Iterator[tuple[str, Sender]]:
        """The senders it names with their key (`owner` is checked with the workflow)."""
        for key, pick in (("from", self.sender), ("reply_to", self.reply_to)):
            if pick is not None and pick.pick != "owner":
                yield key, pick

    def fact_fields(self) -> set[str]:
        used = set() if self.to_field is None else {self.to_field}
        for _, sender in self.senders():
            used |= sender.fields()
        return used

    def field_problems(self, participant: str, fact_fields: Mapping[str, Any]
                       ) -> list[tuple[str, str]]:
        problems = []
        if self.to_contacts and participant != "account":
            problems.append(("to_contacts", f"to_contacts picks an account's contacts; in a "
                                            f"{participant} workflow, address the email with "
                                            f"`to` (a fact field)"))
        if self.to_field is not None and self.to_field not in fact_fields:
            problems.append(("to", unknown_field(self.to, fact_fields)))
        for key, sender in self.senders():
            if sender.pick == "csm":
                missing = [f for f in CSM_FIELDS if f not in fact_fields]
                if missing:
                    problems.append((key, f"csm reads the fact fields {', '.join(CSM_FIELDS)} "
                                          "(the accounts snapshot), which these facts do not "
                                          "have; name them: {field: ..., name_field: ...}"))
                continue
            for name in ("field", "name_field"):
                value = getattr(sender, name)
                if value is not None and value not in fact_fields:
                    problems.append((f"{key}.{name}", unknown_field(value, fact_fields)))
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
                "payload": with_senders(settings_json(
                    to_field=self.to_field, template=self.template, html=self.html,
                    to_contacts=self.to_contacts.model_dump(exclude_defaults=True)
                    if self.to_contacts else None,
                    **({"approval_days": self.approval_days or APPROVAL_DAYS}
                       if self.require_approval else {}),
                ), {key: sender_column(pick, context.owner)
                    for key, pick in (("from", self.sender), ("reply_to", self.reply_to))
                    if pick is not None}),
            },
            errors=[subject[1], body[1]],
        )
