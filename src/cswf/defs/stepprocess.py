"""Imported once by the multiprocess executor's forkserver (defs/fanout.py `executor_for`), so
every step's process forks with it already loaded: Dagster's instance storage (SQLAlchemy,
Alembic), its execution API and the rest a step imports before it runs. Without it each step
imported about 500 modules again, a third of a shard step's CPU time on the demo book.

These are Dagster's own module paths, not its public API: one that a later Dagster moves is
skipped, and a step then imports it itself, as before.
"""

import importlib
import logging

MODULES = (
    "dagster._core.instance.factory",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.root",
    "dagster._core.storage.migration.utils",
    "dagster._core.execution.api",
    "dagster._core.execution.backfill",
    "dagster._core.secrets.loader",
    "dagster._core.secrets.env_file",
    "dagster._core.definitions.external_asset",
    "dagster._core.definitions.repository_definition.repository_data_builder",
    "dagster._core.system_config.composite_descent",
    "upath.implementations.local",
    "fsspec.implementations.local",
)

for _name in MODULES:
    try:
        importlib.import_module(_name)
    except ImportError:  # moved in a later release: the step imports what it needs
        logging.getLogger(__name__).debug("not preloaded: %s", _name)
