"""Project settings: `cswf.yaml` at the project root; CSWF_* environment variables override."""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cswf.calendar import TickCalendar, cron_problem
from cswf.specs.common import Float, Int, MaybeInt, quoted_number

if TYPE_CHECKING:
    from cswf.delivery.config import DeliveryConfig

CONFIG_FILE = "cswf.yaml"
PACKAGE_SQL = Path(__file__).with_name("sql")  # the SQL models cswf ships
PROJECT_SQL = Path("sql")  # a project's own models, when this folder exists
ENV_OVERRIDES = {
    "CSWF_DATABASE": "database",
    "CSWF_BI_DIR": "bi_dir",
    "CSWF_LANDING_DIR": "landing_dir",
    "CSWF_SPECS_DIR": "specs_dir",
    "CSWF_SEGMENTS_DIR": "segments_dir",
    "CSWF_SQL_DIR": "sql_dir",
    "CSWF_TICK_CRON": "tick_cron",
    "CSWF_TICK_START": "tick_start",
    "CSWF_SHARDS": "shards",
    "CSWF_EXECUTOR": "executor",
    "CSWF_MAX_CONCURRENT_SHARDS": "max_concurrent_shards",
    "CSWF_STAGING_DIR": "staging_dir",
    "CSWF_STAGING_URL": "staging_url",
    "CSWF_MEMORY_LIMIT": "memory_limit",
}
# DuckDB's spellings of a size, as `SET memory_limit` takes them
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


class TemplateLimits(BaseModel):
    """Bounds on rendering a workflow's Jinja2 templates (engine/bounds.py): a render past them
    fails its action (`render_failed`, with the reason) and the tick goes on."""

    model_config = ConfigDict(extra="forbid")

    budget_seconds: Float = Field(
        default=30.0, gt=0, description="Seconds of Jinja2 rendering per tick, all workflows; "
        "once spent, the tick's remaining renders fail (which one crosses it depends on the "
        "machine's speed).")
    seconds_per_render: Float = Field(default=1.0, gt=0,
                                      description="One render (one participant, one template).")
    max_chars: Int = Field(default=256 * 1024, ge=1,
                           description="Characters one render may produce, macros and blocks "
                                       "counted as they are produced.")


class ShareLimit(BaseModel):
    """A tick is held when more than `share` of a workflow's active participants exit at once,
    and at least `min` of them: a glitch in one field can empty a workflow in one tick."""

    model_config = ConfigDict(extra="forbid")
    share: Float = Field(default=0.2, gt=0, le=1)
    min: Int = Field(default=10, ge=1)


class SpikeLimit(BaseModel):
    """A tick is held when a count is more than `ratio` times its trailing median and at least
    `min`: the minimum keeps a small book's ordinary day from ever tripping it."""

    model_config = ConfigDict(extra="forbid")
    ratio: Float = Field(default=5.0, gt=0)
    min: Int = Field(default=25, ge=1)


class Guards(BaseModel):
    """What holds a tick before anything leaves (docs/safety.md); a spec's `guards:` block
    overrides these for its workflow."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    history_ticks: Int = Field(
        default=56, ge=1, description="Trailing window of the norms, in ticks (56: a week of "
        "3-hour ticks); ticks where nothing of the kind happened are left out of the median.")
    exits: ShareLimit = Field(default_factory=ShareLimit)
    entries: SpikeLimit = Field(default_factory=SpikeLimit)
    emails: SpikeLimit = Field(default_factory=SpikeLimit)
    webhooks: SpikeLimit = Field(default_factory=SpikeLimit)


class Snapshots(BaseModel):
    """When the account snapshots are too incomplete or too old to tick from (docs/safety.md)."""

    model_config = ConfigDict(extra="forbid")
    max_drop: Float = Field(
        default=0.2, gt=0, le=1,
        description="Largest share of account rows a day may lose against the day before.")
    max_age_days: Int = Field(
        default=2, ge=0, description="Oldest the newest snapshot may be at a tick, in days.")
    accept: list[date] = Field(
        default_factory=list,
        description="Days whose snapshot problems are a known change: ticks go on.")


# Landing objects whose files may carry extra columns, and the types those columns may declare.
Extensible = Literal["accounts", "contacts", "opportunities"]
FieldType = Literal["string", "integer", "float", "date", "boolean"]
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# S3's rule for a bucket's name (MinIO's too): 3-63 lower-case letters, digits, dots, hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP = re.compile(r"\d+\.\d+\.\d+\.\d+")
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")  # a part of the prefix, between two '/'


def _an_s3_url(value: str) -> str:
    """`s3://bucket/prefix`, nothing else: the endpoint, region and credentials come from the
    AWS_* environment (settings end up in run records and logs)."""
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise ValueError("the URL holds credentials: remove them and set AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY instead")
    if not parts.netloc:
        raise ValueError("no bucket: expected s3://<bucket>/<prefix>, such as "
                         "s3://cswf-slices/prod")
    if ":" in parts.netloc:
        raise ValueError("a port after the bucket: the endpoint goes in AWS_ENDPOINT_URL, "
                         "the URL is s3://<bucket>/<prefix>")
    if "?" in value or "#" in value:
        raise ValueError("expected s3://<bucket>/<prefix> and nothing after it (endpoint, "
                         "region and credentials come from the AWS_* environment)")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or any(pair in bucket for pair in ("..", ".-", "-.")) \
            or _IP.fullmatch(bucket):
        raise ValueError(f"{bucket!r} is not a bucket name: 3 to 63 lower-case letters, "
                         "digits, dots and hyphens, not shaped like an IP address")
    prefix = parts.path[1:-1] if parts.path.endswith("/") else parts.path[1:]
    if prefix and not all(_SEGMENT.fullmatch(part) and part not in (".", "..")
                          for part in prefix.split("/")):
        # (the object store would rewrite such a prefix: a `%2F` or `..` writes elsewhere
        # than the lines would name, and an empty segment fails every request)
        raise ValueError(f"the prefix {prefix!r}: parts of letters, digits, '_', '.' and '-' "
                         "between single '/', not '.' or '..'")
    return value


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path = Field(default=Path("."), exclude=True)
    database: Path = Path("data/cswf.duckdb")
    bi_dir: Path = Field(
        default=Path("data/bi"),
        description="The BI copy: reports and tables published after every reports build, for "
        "readers (docs/bi.md); the working database stays the pipeline's alone.",
    )
    landing_dir: Path = Path("data/landing")
    specs_dir: Path = Path("workflow_specs")
    sql_dir: Path | None = Field(
        default=None,
        description="This project's SQL models (facts/, reports/, sources.yml): they add to the "
                    "models cswf ships (cswf/sql) and replace a shipped file of the same name. "
                    "Unset: `sql` at the project root when that folder exists, else none.",
    )
    tick_cron: str = Field(default="0 */3 * * *", description="When ticks happen (UTC).")
    tick_start: datetime = Field(
        default=datetime(2026, 5, 31), description="The first tick's as_of (UTC)."
    )
    categories: list[str] = Field(
        default_factory=lambda: ["Onboarding", "Nurture", "Renewal", "Upsell", "Escalations",
                                 "Support"]
    )
    default_category: str = "Nurture"
    groups_file: Path = Field(
        default=Path("user_groups.yaml"),
        description="User groups: members and how their tasks are assigned (specs/groups.py).",
    )
    templates: TemplateLimits = Field(default_factory=TemplateLimits)
    delivery: dict[str, Any] = Field(
        default_factory=dict, description="How actions leave: see docs/delivery.md."
    )
    guards: Guards = Field(default_factory=Guards)
    snapshots: Snapshots = Field(default_factory=Snapshots)
    fields: dict[Extensible, dict[str, FieldType]] = Field(
        default_factory=dict,
        description="Extra landing columns kept as typed fact fields, per object, e.g. "
        "{accounts: {seats: integer, churn_risk: float}} (docs/data-contract.md).")
    allowed_values: dict[Extensible, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="Value sets replacing the contract's, per object and column, e.g. "
        "{accounts: {tier: [enterprise, mid_market, smb, strategic]}}; a row with another "
        "value is loaded and flagged.")
    segments_dir: Path = Field(
        default=Path("segments"),
        description="Named conditions (segments/*.yaml) workflows use as {segment: name}.")
    shards: Int = Field(
        default=1, ge=1, le=10_000,
        description="Participant shards a tick runs in, each on the participants of its "
        "accounts, then one global step (docs/scaling.md); the result is the same for any "
        "count. 1: one part, as always.")
    executor: Literal["in_process", "multiprocess"] = Field(
        default="in_process",
        description="With shards > 1, where a tick's shards run: in_process (one after "
        "another inside the engine's one step) or multiprocess (a Dagster step and a process "
        "each, at once; docs/scaling.md).")
    max_concurrent_shards: MaybeInt = Field(
        default=None, ge=1,
        description="With executor: multiprocess, how many steps of a run at once (Dagster's "
        "max_concurrent); unset: the machine's CPU count.")
    staging_dir: Path = Field(
        default=Path("data/staging"),
        description="With shards > 1, where each shard publishes its slice of a tick for the "
        "global step (removed once the tick is committed), and where the tick's prepare step "
        "writes its cut of the inputs before it publishes them (whatever staging_url says).")
    memory_limit: str | None = Field(
        default=None,
        description="The most memory DuckDB may use for the working database in each of "
        "cswf's processes (DuckDB's memory_limit, as '4GB'); past it DuckDB spills to disk. "
        "Unset: DuckDB's default, 80% of the machine's memory (set it in a container whose "
        "limit DuckDB may not see; docs/scaling.md).")
    staging_url: str | None = Field(
        default=None,
        description="With shards > 1, a Postgres database (postgresql://user@host:port/db; the "
        "password in PGPASSWORD or ~/.pgpass, not here) or an S3-compatible bucket "
        "(s3://bucket/prefix; endpoint and credentials in the AWS_* environment) the shards "
        "publish their slices to instead of staging_dir: for shard steps on machines that "
        "share no file system (docs/scaling.md).")

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _a_size(cls, value: object) -> object:
        if value is None:
            return value
        text = str(value).strip()  # a bare number (4096) is a size without its unit
        found = _SIZE.fullmatch(text)
        if not found:
            raise ValueError(f"{text!r} is not a size")
        if float(found[1]) * _UNITS[found[2].upper()] < 128 * 2**20:
            raise ValueError(f"{text!r} is too little for DuckDB, which needs 128MB at least")
        return text

    @field_validator("staging_url")
    @classmethod
    def _a_slice_store_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("s3://"):
            return _an_s3_url(value)
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a PostgreSQL or S3 URL such as "
                             "postgresql://cswf@db.example.internal:5432/cswf or "
                             "s3://cswf-slices/prod")
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 (urlsplit checks the port when it is read)
        except ValueError:
            raise ValueError("the port is not a number from 0 to 65535") from None
        if parts.password is not None:  # settings end up in run records and logs
            raise ValueError("the URL holds a password: remove it and set PGPASSWORD or "
                             "~/.pgpass instead")
        return value

    @field_validator("shards", mode="before")
    @classmethod
    def _a_count(cls, value: object) -> object:
        if isinstance(value, bool):  # YAML's yes/true would pass as 1
            raise ValueError(f"expected a whole number of shards, got {value!r}")
        return value

    @field_validator("database", "bi_dir", "landing_dir", "specs_dir", "sql_dir", "groups_file",
                     "segments_dir", "staging_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():  # Path("") would be the project folder
            raise ValueError("an empty path (it would be the project folder itself)")
        return value

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for obj, columns in value.items():
            for name in columns:
                if not _FIELD_NAME.match(name):
                    raise ValueError(f"fields.{obj}.{name}: a field name is lower-case letters, "
                                     "digits and _ (as the landing file's header, lower-cased)")
        return value

    @model_validator(mode="after")
    def _contract_fits(self) -> Settings:
        from cswf.ingest.contract import contract_problems  # the contract: no cswf imports

        problems = contract_problems(self.fields, self.allowed_values)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("tick_cron")
    @classmethod
    def _a_cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _default_is_a_category(self) -> Settings:
        if self.default_category not in self.categories:
            raise ValueError(
                f"default_category '{self.default_category}' is not one of {self.categories}"
            )
        return self

    def path(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else self.root / relative

    @property
    def database_path(self) -> Path:
        return self.path(self.database)

    @property
    def staging_path(self) -> Path:
        return self.path(self.staging_dir)

    @property
    def bi_path(self) -> Path:
        return self.path(self.bi_dir)

    @property
    def landing_path(self) -> Path:
        return self.path(self.landing_dir)

    @property
    def specs_path(self) -> Path:
        return self.path(self.specs_dir)

    @property
    def segments_path(self) -> Path:
        return self.path(self.segments_dir)

    @property
    def groups_path(self) -> Path:
        return self.path(self.groups_file)

    @property
    def project_sql_path(self) -> Path | None:
        """The project's own SQL folder, or None when it has none."""
        if self.sql_dir is not None:
            return self.path(self.sql_dir)
        default = self.path(PROJECT_SQL)
        return default if default.is_dir() else None

    @property
    def sql_path(self) -> Path:
        """The SQL folder the model runners are given: the project's (they layer it over the
        shipped models), else the package's."""
        return self.project_sql_path or PACKAGE_SQL

    @property
    def calendar(self) -> TickCalendar:
        return TickCalendar(self.tick_cron, self.tick_start)

    def delivery_config(self) -> DeliveryConfig:
        from cswf.delivery.config import DeliveryConfig

        return DeliveryConfig.from_mapping(self.delivery, root=self.root)

    def landing_objects(self) -> dict[str, Any]:
        """The landing contract with this project's extra fields and value sets
        (`ingest.contract.landing_objects`)."""
        from cswf.ingest.contract import landing_objects

        return landing_objects(self.fields, self.allowed_values)

    @property
    def facts_sql_path(self) -> Path:
        """One SQL model a file, over the shipped ones; `account_facts` is what conditions
        read."""
        return self.sql_path / "facts"


def find_root(start: Path | None = None) -> Path:
    """The nearest folder upwards holding cswf.yaml (else the start folder)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).exists():
            return folder
    return here


def load_settings(root: Path | None = None, **overrides: object) -> Settings:
    if root is None:
        root = Path(os.environ["CSWF_ROOT"]) if os.environ.get("CSWF_ROOT") else find_root()
    raw: dict[str, object] = {}
    config = root / CONFIG_FILE
    if config.exists():
        loaded = yaml.safe_load(config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: expected a mapping of settings")
        raw.update(loaded)
    for env, key in ENV_OVERRIDES.items():
        if os.environ.get(env):  # a variable is text: a number in it is not one in quotes
            value = os.environ[env]
            raw[key] = yaml.safe_load(value) if quoted_number(value) else value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(root=root, **raw)
