"""The one ingester: every landing folder (snapshots, action events, participant events, deploy
requests) in one call.

Action results go first, so a fresh unsubscribe or completion is known before anything reads
them; deploy requests need the time they arrive (`now`), which a request without its own
`requested_at` takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from cswf.ingest.action_events import EventIngestReport, ingest_action_events
from cswf.ingest.contract import OBJECTS, LandingObject
from cswf.ingest.deploy_requests import DeployFileReport, ingest_deploy_requests
from cswf.ingest.participant_events import ParticipantEventReport, ingest_participant_events
from cswf.ingest.snapshots import IngestReport, ingest_landing

MAX_FLAGGED_LINES = 20  # flagged rows listed by name; the rest are counted
EVENTS_FOLDER = "action_events"  # landing sub-folder of action results (opened, completed, ...)
# A rejected snapshot or deploy-request file loads nothing and blocks ticks until it is fixed.
REJECTED_TODO = ("; nothing of the file was loaded (an earlier version's rows stay): fix it and "
                 "land it again under the same name")
DEPLOY_TODO = "; no request of the file was stored: fix it and land it again under the same name"


@dataclass
class LandingReport:
    """What one ingest did with each kind of landing file."""

    snapshots: IngestReport
    events: EventIngestReport = field(default_factory=EventIngestReport)
    deploys: DeployFileReport = field(default_factory=DeployFileReport)
    participant_events: ParticipantEventReport = field(default_factory=ParticipantEventReport)

    @property
    def rejected(self) -> list[tuple[str, str]]:
        """(file, reason) of every rejected snapshot or deploy-request file."""
        return [*self.snapshots.files_rejected, *self.deploys.files_rejected]

    def lines(self) -> list[str]:
        """A few lines a person reads: what loaded, what was skipped, what was rejected why."""
        snap = self.snapshots
        rows = ", ".join(f"{name} {count:,}" for name, count in snap.rows_loaded.items() if count)
        out = [f"snapshots: {len(snap.files_loaded)} file(s) loaded"
               + (f" ({rows} rows)" if rows else "")
               + f", {len(snap.files_skipped_unchanged)} unchanged, "
               f"{len({f for f, _ in snap.files_rejected})} rejected"]
        if self.events.files:
            out.append(f"action events: {self.events.files} file(s), {self.events.inserted:,} new "
                       f"event(s), {len(self.events.rejected)} row(s) rejected")
        if self.participant_events.files:
            out.append(self.participant_events.line())
        deploys = self.deploys
        if deploys.files_loaded or deploys.files_rejected:
            out.append(f"deploy requests: {len(deploys.files_loaded)} file(s) loaded, "
                       f"{deploys.requests_stored} new request(s), "
                       f"{len({f for f, _ in deploys.files_rejected})} rejected")
        out += [f"rejected: {reason}{REJECTED_TODO}" for _, reason in snap.files_rejected]
        out += [f"rejected: {reason}{DEPLOY_TODO}" for _, reason in deploys.files_rejected]
        flagged = snap.rows_flagged
        out += [f"duplicate key: {line}" for line in snap.duplicate_keys]
        out += [f"flagged row: {line}" for line in flagged[:MAX_FLAGGED_LINES]]
        if len(flagged) > MAX_FLAGGED_LINES:
            out.append(f"flagged rows: {len(flagged) - MAX_FLAGGED_LINES} more (table "
                       "ingest_row_flags)")
        out += [f"rejected event row: {message}" for message in self.events.rejected[:20]]
        out += [f"rejected event row: {message}"
                for message in self.participant_events.rejected[:20]]
        return out


def ingest_all(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    now: datetime | None = None,
    known_workflows: Sequence[str] | None = None,
    objects: Mapping[str, LandingObject] = OBJECTS,
) -> LandingReport:
    """Load every new or changed landing file; unchanged files are skipped, bad ones rejected
    with a reason. Deploy requests are read only when `now` is given. `objects`: the contract
    with the project's extra fields and value sets (`Settings.landing_objects()`)."""
    events = landing_dir / EVENTS_FOLDER
    event_report = ingest_action_events(con, events) if events.is_dir() else EventIngestReport()
    snapshots = ingest_landing(con, landing_dir, objects)
    happened = ingest_participant_events(con, landing_dir)
    deploys = (ingest_deploy_requests(con, landing_dir, now, known_workflows)
               if now is not None else DeployFileReport())
    return LandingReport(snapshots, event_report, deploys, happened)
