"""Facts: landing ingest into raw tables and the SQL models that turn them into facts per object."""

from cswf_pipelines.facts.build import (
    FACT_MODELS,
    FINAL_MODEL,
    FactModelError,
    build_facts,
    fact_schema,
    load_models,
)
from cswf_pipelines.facts.checks import snapshot_problems
from cswf_pipelines.facts.contract import (
    ACCOUNTS,
    CONTACTS,
    OBJECTS,
    OPPORTUNITIES,
    USAGE,
    Column,
    LandingObject,
)
from cswf_pipelines.facts.ingest import (
    IngestReport,
    ensure_tables,
    ingest_landing,
    landing_files,
)

__all__ = [
    "ACCOUNTS",
    "CONTACTS",
    "FACT_MODELS",
    "FINAL_MODEL",
    "OBJECTS",
    "OPPORTUNITIES",
    "USAGE",
    "Column",
    "FactModelError",
    "IngestReport",
    "LandingObject",
    "build_facts",
    "ensure_tables",
    "fact_schema",
    "ingest_landing",
    "landing_files",
    "load_models",
    "snapshot_problems",
]
