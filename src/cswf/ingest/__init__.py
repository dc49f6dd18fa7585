"""Ingest: every landing file (snapshots, action events, deploy requests) into raw tables."""

from cswf.ingest.checks import snapshot_problems
from cswf.ingest.contract import (
    ACCOUNTS,
    CONTACTS,
    OBJECTS,
    OPPORTUNITIES,
    USAGE,
    Column,
    LandingObject,
)
from cswf.ingest.snapshots import (
    IngestReport,
    ensure_tables,
    ingest_landing,
    landing_files,
)

__all__ = [
    "ACCOUNTS",
    "CONTACTS",
    "OBJECTS",
    "OPPORTUNITIES",
    "USAGE",
    "Column",
    "IngestReport",
    "LandingObject",
    "ensure_tables",
    "ingest_landing",
    "landing_files",
    "snapshot_problems",
]
