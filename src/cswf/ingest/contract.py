"""The landing data contract: which files, which columns, which types.

One definition shared by the ingest (table DDL, validation), the asset checks and the docs, so the
three never disagree about what a valid landing file is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Column:
    """One contract column. `key` columns must never be NULL; `allowed` lists the legal values."""

    name: str
    dtype: str  # DuckDB type name
    required: bool
    description: str
    key: bool = False
    allowed: tuple[str, ...] | None = None
    extra: bool = False  # declared in the project's settings (`fields:`), not by cswf


@dataclass(frozen=True)
class LandingObject:
    """One kind of landing file: its folder, its raw table and its columns."""

    name: str  # also the sub-folder of the landing dir and the file-name prefix
    table: str
    date_column: str
    columns: tuple[Column, ...]

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that identify a row: (date, id), e.g. (snapshot_date, contact_id)."""
        return tuple(c.name for c in self.columns if c.key)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def ddl(self) -> str:
        """CREATE TABLE statement of the raw table: contract columns plus the source file."""
        cols = ",\n    ".join(f'"{c.name}" {c.dtype}' for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.table} (\n    {cols},\n    source_file VARCHAR\n)"


TIERS = ("enterprise", "mid_market", "smb")
STAGES = ("onboarding", "adoption", "mature", "renewal", "churned")
CONTACT_ROLES = ("champion", "admin", "user", "executive", "billing")
OPPORTUNITY_TYPES = ("new_business", "renewal", "upsell")
OPPORTUNITY_STAGES = (
    "prospecting",
    "qualification",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
)
CLOSED_STAGES = ("closed_won", "closed_lost")

ACCOUNTS = LandingObject(
    name="accounts",
    table="raw_accounts",
    date_column="snapshot_date",
    columns=(
        Column("snapshot_date", "DATE", True, "Day the snapshot describes", key=True),
        Column("account_id", "VARCHAR", True, "Stable account identifier", key=True),
        Column("account_name", "VARCHAR", True, "Display name"),
        Column("tier", "VARCHAR", True, "Customer segment", allowed=TIERS),
        Column("stage", "VARCHAR", True, "Lifecycle stage", allowed=STAGES),
        Column("stage_entered_on", "DATE", True, "Day the account entered its current stage"),
        Column("arr", "DOUBLE", True, "Annual recurring revenue"),
        Column("seats_purchased", "INTEGER", True, "Seats in the contract"),
        Column("seats_active", "INTEGER", True, "Seats assigned to active users"),
        Column("contract_start", "DATE", True, "First day of the first contract"),
        Column("renewal_date", "DATE", True, "Next renewal date"),
        Column("health_score", "DOUBLE", False, "Health score 0-100; NULL when not yet scored"),
        Column("nps", "INTEGER", False, "Latest NPS answer 0-10; NULL when never answered"),
        Column("nps_responded_on", "DATE", False, "Day of the latest NPS answer"),
        Column("open_tickets", "INTEGER", False, "Open support tickets"),
        Column("csm_name", "VARCHAR", True, "Customer-success manager who owns the account"),
        Column("csm_email", "VARCHAR", True, "The CSM's e-mail address"),
        Column("primary_contact_name", "VARCHAR", False, "Customer's main contact"),
        Column("primary_contact_email", "VARCHAR", False, "The main contact's e-mail address"),
        Column("region", "VARCHAR", False, "Sales region"),
        Column("industry", "VARCHAR", False, "Customer industry"),
        Column("time_zone", "VARCHAR", False, "IANA time zone, e.g. Europe/Berlin"),
    ),
)

USAGE = LandingObject(
    name="usage",
    table="raw_usage",
    date_column="usage_date",
    columns=(
        Column("usage_date", "DATE", True, "Day the usage happened", key=True),
        Column("account_id", "VARCHAR", True, "Account the usage belongs to", key=True),
        Column("active_users", "INTEGER", True, "Distinct users active that day"),
        Column("events", "INTEGER", True, "Product events that day"),
    ),
)

# Contacts and opportunities are optional as a whole: a landing folder without them is valid and
# their raw tables stay empty. Each row names its account, whose facts conditions can read.
CONTACTS = LandingObject(
    name="contacts",
    table="raw_contacts",
    date_column="snapshot_date",
    columns=(
        Column("snapshot_date", "DATE", True, "Day the snapshot describes", key=True),
        Column("contact_id", "VARCHAR", True, "Stable contact identifier", key=True),
        Column("account_id", "VARCHAR", True, "Account the contact belongs to"),
        Column("contact_name", "VARCHAR", True, "Display name"),
        Column("email", "VARCHAR", True, "The contact's e-mail address"),
        Column("role", "VARCHAR", True, "Role at the customer", allowed=CONTACT_ROLES),
        Column("is_primary", "BOOLEAN", True, "The account's main contact"),
        Column("title", "VARCHAR", False, "Job title"),
        Column("last_login_on", "DATE", False, "Day of the latest product login"),
        Column("nps", "INTEGER", False, "Latest NPS answer 0-10; NULL when never answered"),
        Column("time_zone", "VARCHAR", False, "IANA time zone, e.g. Europe/Berlin"),
    ),
)

OPPORTUNITIES = LandingObject(
    name="opportunities",
    table="raw_opportunities",
    date_column="snapshot_date",
    columns=(
        Column("snapshot_date", "DATE", True, "Day the snapshot describes", key=True),
        Column("opportunity_id", "VARCHAR", True, "Stable opportunity identifier", key=True),
        Column("account_id", "VARCHAR", True, "Account the opportunity belongs to"),
        Column("opportunity_name", "VARCHAR", True, "Display name"),
        Column("type", "VARCHAR", True, "Kind of deal", allowed=OPPORTUNITY_TYPES),
        Column("stage", "VARCHAR", True, "Sales stage", allowed=OPPORTUNITY_STAGES),
        Column("amount", "DOUBLE", True, "Deal value"),
        Column("close_date", "DATE", True, "Expected (or actual, once closed) close date"),
        Column("owner_email", "VARCHAR", True, "E-mail address of the opportunity owner"),
        Column("stage_entered_on", "DATE", False, "Day the opportunity entered its stage"),
    ),
)

OBJECTS: dict[str, LandingObject] = {o.name: o for o in (ACCOUNTS, USAGE, CONTACTS, OPPORTUNITIES)}

# Participant events (survey answers, tickets, product events, ...): what happened to whom, when.
# Unlike snapshots they are appended, never replaced: a row is kept once per (event_type,
# event_id). Columns a file has beyond these become the event's `properties` (JSON text).
# `counted_at` is set by the ingest, never by the file (ingest/participant_events.py).
EVENTS = LandingObject(
    name="events",
    table="raw_events",
    date_column="occurred_at",
    columns=(
        Column("event_type", "VARCHAR", True, "What happened, e.g. nps_response", key=True),
        Column("event_id", "VARCHAR", False,
               "The event's id in its source; default: a hash of the row", key=True),
        Column("participant_id", "VARCHAR", True,
               "Whom it happened to: an account_id, contact_id or opportunity_id"),
        Column("occurred_at", "TIMESTAMP", True, "When it happened (ISO 8601; UTC if no zone)"),
        Column("properties", "VARCHAR", False, "The file's other columns, as a JSON object"),
        Column("counted_at", "TIMESTAMP", False,
               "When conditions count it: occurred_at, or just after the latest tick run if it "
               "landed late"),
    ),
)

FILE_SUFFIXES = (".csv", ".parquet")


# Extra columns (settings `fields:`): the type a project declares → the DuckDB type it loads as.
FIELD_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "float": "DOUBLE", "date": "DATE",
               "boolean": "BOOLEAN"}
EXTENSIBLE = ("accounts", "contacts", "opportunities")

Fields = Mapping[str, Mapping[str, str]]  # object → column → type name (FIELD_TYPES)
Allowed = Mapping[str, Mapping[str, Sequence[str]]]  # object → column → legal values


def contract_problems(fields: Fields, allowed: Allowed) -> list[str]:
    """Why the settings' extra fields or value sets do not fit the contract, as sentences."""
    problems = []
    for obj, columns in fields.items():
        taken = {c.name for c in OBJECTS[obj].columns}
        problems += [f"fields.{obj}.{name}: '{name}' is already a contract column of {obj} "
                     "(docs/data-contract.md); remove it from fields"
                     for name in columns if name in taken]
    for obj, columns in allowed.items():
        text = {c.name for c in OBJECTS[obj].columns if c.dtype == "VARCHAR"}
        text |= {n for n, kind in fields.get(obj, {}).items() if kind == "string"}
        for name, values in columns.items():
            if name not in text:
                problems.append(f"allowed_values.{obj}.{name}: {obj} has no text column "
                                f"'{name}'; text columns: {', '.join(sorted(text))}")
            elif not values:
                problems.append(f"allowed_values.{obj}.{name}: list at least one value")
    return problems


def landing_objects(fields: Fields | None = None,
                    allowed: Allowed | None = None) -> dict[str, LandingObject]:
    """The contract as a project sees it: its extra columns added, its value sets in place."""
    out = {}
    for name, obj in OBJECTS.items():
        values = dict((allowed or {}).get(name, {}))
        columns = [replace(c, allowed=tuple(values[c.name])) if c.name in values else c
                   for c in obj.columns]
        columns += [Column(column, FIELD_TYPES[kind], False, f"Extra field ({kind}), declared "
                           "in cswf.yaml", allowed=tuple(values[column]) if column in values
                           else None, extra=True)
                    for column, kind in (fields or {}).get(name, {}).items()]
        out[name] = replace(obj, columns=tuple(columns))
    return out


def contract_columns(name: str) -> str:
    """The columns cswf's contract defines for a landing object, quoted and comma-separated:
    fact models select `r.* EXCLUDE (...)` of them to carry a project's extra columns."""
    return ", ".join(f'"{c.name}"' for c in OBJECTS[name].columns)
