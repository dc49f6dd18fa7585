"""The SQL models' declared data tests (not_null, unique, accepted values, unique combinations;
`sql/**/<model>.yml`, and the landing tables' from the data contract) as Dagster asset checks.

One multi-asset check per model runs all of that model's tests in one step, so a run pays one
step per model, not one per test. Each test is its own check in the UI, with its severity (a
`warn` test shows as a warning), its failing count and a few failing rows. None is blocking: the
checks that must stop the engine or delivery are in `defs/checks.py`. Tests of the facts check
the run's ticks only.
"""


from collections.abc import Iterator, Sequence

import dagster as dg
from dagster_duckdb import DuckDBResource

from cswf.defs.checks import ticks_of_run
from cswf.defs.resources import CswfProject, open_warehouse
from cswf.ingest.contract import OBJECTS
from cswf.quality import DataTestResult, declared_tests, run_data_tests
from cswf.reports.build import report_files
from cswf.settings import Settings

PER_TICK = {"account_facts"}  # stored by tick: test the ticks the run computed


def data_test_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """A check for every declared test of the landing tables, the facts and the reports."""
    models = {obj.table: "landing_snapshots" for obj in OBJECTS.values()}
    models["account_facts"] = "account_facts"
    models |= {path.stem: path.stem for path in report_files(settings.sql_path)}
    return [check for model, asset in models.items()
            if (check := _model_checks(settings, model, asset)) is not None]


def per_run_tests(checks: Sequence[dg.AssetChecksDefinition]) -> list[dg.AssetChecksDefinition]:
    """The data tests of the unpartitioned assets (landing tables, reports): they test whole
    tables, so a range of ticks needs them once, not once per tick (defs/automation.py)."""
    return [check for check in checks
            if not any(key.asset_key.path[-1] in PER_TICK for key in check.check_keys)]


def _model_checks(settings: Settings, model: str, asset: str) -> dg.AssetChecksDefinition | None:
    tests = declared_tests(model, settings.sql_path, settings.landing_objects())
    if not tests:
        return None
    specs = [dg.AssetCheckSpec(test.name, asset=asset, description=test.description)
             for test in tests]

    @dg.multi_asset_check(specs=specs, name=f"data_tests_{model}", can_subset=True)
    def check(context: dg.AssetCheckExecutionContext, cswf: CswfProject,
              warehouse: DuckDBResource) -> Iterator[dg.AssetCheckResult]:
        ticks = ticks_of_run(context) if model in PER_TICK else None
        where = "as_of IN (SELECT unnest($ticks))" if ticks else None
        wanted = {key.name for key in context.selected_asset_check_keys}
        with open_warehouse(warehouse) as con:
            project = cswf.settings()
            results = run_data_tests(con, model, sql_dir=project.sql_path, where=where,
                                     params={"ticks": ticks} if ticks else None,
                                     only=sorted(wanted), objects=project.landing_objects())
        for result in results:
            yield _result(asset, result)

    return check


def _result(asset: str, result: DataTestResult) -> dg.AssetCheckResult:
    test = result.test
    if result.error:
        said = f"could not run: {result.error}"
    elif result.passed:
        said = f"{test.kind} holds"
    else:
        said = f"{result.failing} failing row(s)"
    return dg.AssetCheckResult(
        asset_key=asset, check_name=test.name, passed=result.passed,
        severity=dg.AssetCheckSeverity.WARN if test.severity == "warn"
        else dg.AssetCheckSeverity.ERROR,
        description=said,
        metadata={"failing": result.failing, "declared_in": test.declared_in,
                  "samples": dg.MetadataValue.json(
                      [{k: str(v) for k, v in row.items()} for row in result.samples])},
    )
