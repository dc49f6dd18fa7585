"""The landing folder's README, written from the contract in code (`cswf.ingest.contract` and
the two file-drop folders' own constants), so a project's copy never disagrees with the ingest."""

from __future__ import annotations

from cswf.ingest import action_events, deploy_requests
from cswf.ingest.contract import ACCOUNTS, EVENTS, FILE_SUFFIXES, OBJECTS, Column, LandingObject
from cswf.ingest.landing import EVENTS_FOLDER
from cswf.store.tables import EVENT_TYPES, SUPPRESSING_EVENTS

SUFFIXES = " or ".join(f"`{s}`" for s in FILE_SUFFIXES)
SNAPSHOTS = [o.name for o in OBJECTS.values() if o.date_column == "snapshot_date"]


def landing_readme() -> str:
    """Markdown: the folders, file names, formats and, per object, every column."""
    return "\n".join([
        "# Landing folder",
        "",
        "Drop snapshot files here; `cswf ingest` (and every `cswf run` and `cswf tick`) loads",
        "the new and changed ones. Written by `cswf init` from the data contract of the cswf",
        "version installed (`cswf init` in an empty folder writes the current one).",
        "",
        "```",
        *[f"{o.name}/{o.name}_YYYY-MM-DD{FILE_SUFFIXES[0]}" for o in OBJECTS.values()],
        f"{deploy_requests.FOLDER}/<any name>{FILE_SUFFIXES[0]}",
        f"{EVENTS_FOLDER}/<any name>{FILE_SUFFIXES[0]}",
        f"{EVENTS.name}/<any name>{FILE_SUFFIXES[0]}",
        "```",
        "",
        f"- One sub-folder per object; files are {SUFFIXES} (CSV: comma-separated, UTF-8, one",
        "  header row). The date in a file name is a convention: the date column inside decides",
        "  which day a row describes, and a file may hold several days.",
        "- Ignored: names starting with `.` (write under a hidden name, then rename), other",
        "  extensions, other folders, this README.",
        "- Column names are matched trimmed and lower-cased; columns not listed are ignored",
        "  unless cswf.yaml declares them (`fields:`, typed: they become fact fields); optional",
        "  columns may be left out (they load as NULL). An empty CSV field is NULL.",
        "- Dates are `YYYY-MM-DD`; numbers use a decimal point; booleans are true/false, 1/0 or",
        "  yes/no. A value that does not convert to its type, a missing required column or a key",
        "  left empty rejects the whole file, with a reason. A value outside the allowed ones",
        "  (cswf.yaml `allowed_values:` changes them) or a declared extra field that does not",
        "  convert loads and flags its row (`cswf ingest` lists it).",
        f"- A tick runs only once `{ACCOUNTS.name}` has rows; the other objects may be absent",
        "  (their tables stay empty).",
        f"- {_names(SNAPSHOTS)} are daily snapshots: a row describes its object on that day, and",
        "  an object missing from a day keeps its latest earlier row; send every object every",
        "  day (a full daily dump).",
        "",
        *[line for obj in OBJECTS.values() for line in _object(obj)],
        *_deploy_requests(),
        *_action_events(),
        *_participant_events(),
    ])


def _names(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _object(obj: LandingObject) -> list[str]:
    key = ", ".join(f"`{name}`" for name in obj.key)
    return [
        f"## {obj.name}",
        "",
        f"Folder `{obj.name}/`; one row per {key} (the key: never empty, never twice). The day",
        f"is `{obj.date_column}`.",
        "",
        "| column | type | required | allowed values | meaning |",
        "| --- | --- | --- | --- | --- |",
        *[_row(column) for column in obj.columns],
        "",
    ]


def _row(column: Column) -> str:
    required = "key" if column.key else "yes" if column.required else "optional"
    allowed = ", ".join(f"`{v}`" for v in column.allowed) if column.allowed else ""
    return (f"| {column.name} | {column.dtype} | {required} | {allowed} | "
            f"{column.description} |")


def _deploy_requests() -> list[str]:
    return [
        f"## {deploy_requests.FOLDER}",
        "",
        "Manual deploys in bulk (the file form of `cswf deploy`): each row asks that a workflow",
        "enter a participant at the next tick, which enters it or records why not.",
        "",
        "| column | required |",
        "| --- | --- |",
        *[f"| {name} | yes |" for name in deploy_requests.REQUIRED],
        *[f"| {name} | optional |" for name in deploy_requests.OPTIONAL],
        "",
        "`requested_at` is UTC unless it carries an offset (`Z`, `+02:00`); empty means the time",
        "of the ingest.",
        "",
    ]


def _action_events() -> list[str]:
    return [
        f"## {EVENTS_FOLDER}",
        "",
        "Results of actions coming back (from your email or task tool), keyed by `action_id`",
        "from the outbox; a row reported twice lands once.",
        "",
        "| column | required |",
        "| --- | --- |",
        *[f"| {name} | {'yes' if name in action_events.REQUIRED else 'optional'} |"
          for name in action_events.EVENT_SCHEMA],
        "",
        f"`event_type` is one of {', '.join(f'`{e}`' for e in EVENT_TYPES)}; "
        f"{', '.join(f'`{e}`' for e in SUPPRESSING_EVENTS)} also stop all mail to the "
        "address.",
        "",
        "A row whose `action_id` is not in the outbox yet waits: leave the file here, and the",
        "first ingest after the tick that emits the action loads it (`cswf run` ingests once,",
        "at its start: an event for an action emitted during the run loads at the next ingest).",
        "",
    ]


def _participant_events() -> list[str]:
    file_columns = [c for c in EVENTS.columns if c.name not in ("properties", "counted_at")]
    return [
        f"## {EVENTS.name}",
        "",
        "What happened to a participant (an NPS answer, a ticket opened, a product event), one",
        "event a row, appended: a row lands once per (`event_type`, `event_id`), so landing a",
        "file again adds nothing. Any other column is a property of the event (conditions test",
        "it with `where:`). A bad row is reported with its file, row and column and does not",
        "load; the file's other rows do.",
        "",
        "| column | type | required | meaning |",
        "| --- | --- | --- | --- |",
        *[f"| {c.name} | {c.dtype} | {'yes' if c.required else 'optional'} | {c.description} |"
          for c in file_columns],
        "",
        "An event that lands after a tick later than its `occurred_at` has run counts at the",
        "next tick.",
        "",
    ]
