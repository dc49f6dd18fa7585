"""Facts: the SQL models that turn landed snapshots into one row per (tick, participant)."""

from cswf.facts.models import (
    FACT_MODELS,
    FINAL_MODEL,
    FactModelError,
    build_facts,
    fact_catalog,
    fact_schema,
    fact_types,
    load_models,
)

__all__ = ["FACT_MODELS", "FINAL_MODEL", "FactModelError", "build_facts", "fact_catalog",
           "fact_schema", "fact_types", "load_models"]
