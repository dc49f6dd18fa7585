"""A new action type and a new delivery channel are one file each (docs/extending.md).

`postcard_action.py` and `post_channel.py` define a postcard and the post that carries it, and
nothing else in cswf knows of them: once registered, a workflow using postcards validates (with
the usual errors and JSON Schema), ticks into outbox rows, is delivered by the new channel, and
its results are recorded and seen by the next tick's wait.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl
import pytest
from engine_harness import facts
from post_channel import Post, PostSender
from postcard_action import PostcardAction
from test_delivery_servers import make_config

import cswf
from cswf.delivery import channels as delivery_channels
from cswf.delivery import default_senders, deliver, ingest_action_events
from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.tick import TickResult, run_tick
from cswf.registry import import_modules
from cswf.specs import actions
from cswf.specs.action import ActionSpec, Outbox, OutboxContext
from cswf.specs.loader import LoadedWorkflow, SpecErrors, parse_spec
from cswf.specs.schema import json_schema
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import load_events, write_tick

DAY1 = datetime(2026, 6, 1, 9, 0)
FIELDS = {"participant_id": pl.String(), "name": pl.String(), "postal_address": pl.String()}
SPEC = """
name: postcards
owner: {user: csm@vendor.test}
category: Nurture
state: enabled
entry: {field: postal_address, op: not_null}
steps:
  - name: send_card
    actions:
      - {type: postcard, name: card, message: "Hello {{ name }}!", stamp: first}
  - name: wait_for_post
    wait: {action: send_card.card, result: posted, max_days: 5}
  - name: check
    branch:
      - name: came_back
        action: send_card.card
        result: returned
        steps:
          - {name: fix_address, actions: [{type: task, title: "Fix the address of {{ name }}"}]}
"""
PEOPLE = [{"participant_id": "A", "name": "Ann", "postal_address": "1 Main St"},
          {"participant_id": "B", "name": "Bo", "postal_address": ""}]


@pytest.fixture
def postcards() -> Iterator[None]:
    """The postcard and the post, registered for one test (other tests see the built-ins)."""
    actions.register(PostcardAction)
    delivery_channels.register(Post)
    try:
        yield
    finally:
        delivery_channels.unregister(Post)
        actions.unregister(PostcardAction)


def load(text: str = SPEC) -> LoadedWorkflow:
    return parse_spec(text, Path("postcards.yaml"), FIELDS)


def errors(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        load(text)
    return [str(e) for e in caught.value.errors]


def tick(con: duckdb.DuckDBPyConnection, workflow: LoadedWorkflow, state: pl.DataFrame,
         as_of: datetime) -> TickResult:
    """One tick as the pipeline runs it: the events stored so far in, the result stored."""
    result = run_tick(state, facts(as_of, PEOPLE), None, load_events(con, as_of), [workflow],
                      as_of)
    write_tick(con, result)
    return result


# -- the spec ---------------------------------------------------------------------------------


def test_a_workflow_using_the_new_type_validates(postcards: None) -> None:
    workflow = load()
    (action,) = workflow.spec.steps[0].actions  # type: ignore[union-attr]
    assert isinstance(action, PostcardAction) and action.stamp == "first"
    assert workflow.templates["s0.a0.message"] == "Hello {{ name }}!"
    assert "postal_address" in workflow.fact_fields()
    schema = json.dumps(json_schema())
    assert '"PostcardAction"' in schema and '"returned"' in schema


def test_the_new_type_gets_the_usual_errors(postcards: None) -> None:
    card = '{type: postcard, name: card, message: "Hello {{ name }}!"'
    assert errors(SPEC.replace(card, '{type: postcard, name: card, to: street')) == [
        "postcards.yaml: steps.0.actions.0.message: Field required"]
    assert errors(SPEC.replace(card, card + ", to: street")) == [
        "postcards.yaml: steps.0.actions.0.to: unknown field 'street'; fields that exist: name, "
        "participant_id, postal_address"]
    assert errors(SPEC.replace("result: returned", "result: opened")) == [
        "postcards.yaml: steps.2.branch.0.result: 'opened' is not a result of a postcard; "
        "results: sent, posted, returned, not_returned"]
    assert errors(SPEC.replace("Hello {{ name }}", "Hello {{ nme }}")) == [
        "postcards.yaml: steps.0.actions.0.message: template uses unknown name(s) ['nme']; it "
        "may use the fact fields and workflow, as_of, step"]


def test_once_taken_back_the_type_is_unknown_again(tmp_path: Path) -> None:
    actions.register(PostcardAction)
    actions.unregister(PostcardAction)
    assert errors(SPEC)[0] == (
        "postcards.yaml: steps.0.actions.0: Input tag 'postcard' found using 'type' does not "
        "match any of the expected tags: 'task', 'email', 'field_update', 'webhook', "
        "'notification'")
    committed = Path(__file__).parents[1] / "docs" / "workflow-spec.schema.json"
    assert json.loads(committed.read_text()) == json_schema()


def test_a_type_name_is_taken_once() -> None:
    class Imposter(ActionSpec):
        delivered_by = "post"
        type: Literal["email"]

    with pytest.raises(ValueError, match="action type 'email' is already registered"):
        actions.register(Imposter)
    assert actions.action_type("email") is not Imposter


def test_a_type_fills_only_outbox_columns(postcards: None, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    def outbox(self: PostcardAction, context: OutboxContext) -> Outbox:
        return Outbox({"stamp_colour": pl.lit("red")})

    monkeypatch.setattr(PostcardAction, "outbox", outbox)
    with pytest.raises(ValueError, match=r"fills \['stamp_colour'\]; an action fills only"):
        run_tick(empty(ENROLLMENT_SCHEMA), facts(DAY1, PEOPLE), None, None, [load()], DAY1)


def test_a_failing_action_type_is_the_tick_s_error_though_its_rows_are_built_beside(
        postcards: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # A step's action rows are built on the tick's second thread while the flow goes on
    # (engine/beside.py); a later failure on the tick's own thread must not hide the earlier
    # one: the tick fails as on one thread, naming the workflow and the step.
    def outbox(self: PostcardAction, context: OutboxContext) -> Outbox:
        raise LookupError("no stamps left")

    def schedule(frame: pl.DataFrame) -> None:
        raise OverflowError("met after the step's actions, on the tick's thread")

    monkeypatch.setattr(PostcardAction, "outbox", outbox)
    monkeypatch.setattr("cswf.engine.flow.check_schedule", schedule)
    with pytest.raises(ValueError) as caught:
        run_tick(empty(ENROLLMENT_SCHEMA), facts(DAY1, PEOPLE), None, None, [load()], DAY1)
    assert str(caught.value) == ("workflow 'postcards': evaluating steps.0 (step 'send_card') "
                                 "failed: no stamps left")


# -- tick, delivery, results --------------------------------------------------------------------


def test_a_fact_its_outbox_reads_but_fact_fields_leaves_out_is_gathered_all_the_same(
        postcards: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """fact_fields() should name every fact the outbox reads outside templates
    (docs/extending.md); a type that forgets one still gets it, not a failed tick."""
    monkeypatch.setattr(PostcardAction, "fact_fields", lambda self: set())
    result = run_tick(empty(ENROLLMENT_SCHEMA), facts(DAY1, PEOPLE), None, None, [load()], DAY1)
    assert result.actions.sort("participant_id")["recipient"].to_list() == ["1 Main St", ""]


def test_it_ticks_into_outbox_rows(postcards: None) -> None:
    result = run_tick(empty(ENROLLMENT_SCHEMA), facts(DAY1, PEOPLE), None, None, [load()], DAY1)
    rows = result.actions.sort("participant_id").select(
        "action_id", "action_type", "category", "assignee", "recipient", "subject", "body",
        "payload", "status", "on_error").to_dicts()
    common = {"action_type": "postcard", "category": "Nurture", "assignee": "csm@vendor.test",
              "subject": "postcard (first class)", "payload": '{"stamp": "first"}',
              "status": "pending", "on_error": "retry"}
    assert rows == [
        {**common, "action_id": "postcards/A/1/s0.a0", "recipient": "1 Main St",
         "body": "Hello Ann!"},
        {**common, "action_id": "postcards/B/1/s0.a0", "recipient": "", "body": "Hello Bo!"},
    ]


def test_the_new_channel_delivers_it_and_the_next_tick_sees_its_results(
    postcards: None, tmp_path: Path
) -> None:
    con = duckdb.connect()
    ensure_engine_tables(con)
    workflow, config = load(), make_config(tmp_path)
    first = tick(con, workflow, empty(ENROLLMENT_SCHEMA), DAY1)
    sender = PostSender()
    report = deliver(con, {"post": sender}, config, DAY1 + timedelta(hours=1))
    assert report.outcomes == {"sent": 1, "failed": 1}
    assert [card.action_id for card in sender.cards] == ["postcards/A/1/s0.a0"]
    deliveries = con.sql("SELECT action_id, channel, status, provider_id, last_error "
                         "FROM deliveries ORDER BY action_id").fetchall()
    assert deliveries == [("postcards/A/1/s0.a0", "post", "sent", "card-1", None),
                          ("postcards/B/1/s0.a0", "post", "failed", None, "no postal address")]
    # A result of the new type can also come back from outside, like an email's `opened`.
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "post.csv").write_text("action_id,event_type,occurred_at,detail\n"
                                     "postcards/A/1/s0.a0,returned,2026-06-01T18:00:00Z,moved\n")
    assert ingest_action_events(con, folder).rejected == []
    events = con.sql("SELECT action_id, event_type, detail, source FROM action_events "
                     "ORDER BY action_id, event_type").fetchall()
    assert events == [("postcards/A/1/s0.a0", "posted", "first class", "post"),
                      ("postcards/A/1/s0.a0", "returned", "moved", "file:post.csv"),
                      ("postcards/A/1/s0.a0", "sent", "printed", "post"),
                      ("postcards/B/1/s0.a0", "failed", "no postal address", "post")]
    second = tick(con, workflow, first.state, DAY1 + timedelta(days=1))
    assert second.transitions.select("participant_id", "transition", "reason").rows()[:3] == [
        ("A", "advanced", "wait 'wait_for_post' ended: send_card.card posted"),
        ("A", "advanced", "branch 'check' took path 'came_back'"),
        ("A", "advanced", "ran 1 action(s) of step 'fix_address'"),
    ]
    assert second.actions.select("action_id", "action_type", "subject").rows() == [
        ("postcards/A/1/s3.a0", "task", "Fix the address of Ann")]
    assert second.state.filter(pl.col("participant_id") == "B")["step_name"].to_list() == [
        "wait_for_post"]


def test_default_senders_and_a_dry_run_know_the_new_channel(postcards: None,
                                                            tmp_path: Path) -> None:
    config = make_config(tmp_path, dry_run=True)
    assert isinstance(default_senders(config)["post"], PostSender)
    con = duckdb.connect()
    ensure_engine_tables(con)
    tick(con, load(), empty(ENROLLMENT_SCHEMA), DAY1)
    report = deliver(con, default_senders(config), config, DAY1 + timedelta(hours=1))
    assert report.outcomes == {"previewed": 1, "failed": 1}
    card = tmp_path / "preview" / "postcards%2FA%2F1%2Fs0.a0.txt"
    assert card.read_text() == "To: 1 Main St\n\nHello Ann!\n"
    assert {row[0] for row in con.sql("SELECT channel FROM deliveries").fetchall()} == {
        "dry_run"}


def test_every_module_of_a_registry_package_is_imported_builtins_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cswf_test_plugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("zeta", "alpha", "beta"):
        (package / f"{name}.py").write_text(
            "import cswf_test_plugins as p\n"
            f"p.seen = [*getattr(p, 'seen', []), {name!r}]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import cswf_test_plugins as plugins  # type: ignore[import-not-found]

    import_modules("cswf_test_plugins", plugins.__path__, first=("zeta",))
    assert plugins.seen == ["zeta", "alpha", "beta"]


def test_the_built_in_types_and_channels() -> None:
    assert actions.action_type_names() == ("task", "email", "field_update", "webhook",
                                           "notification")
    assert delivery_channels.channel_names() == ("smtp", "webhook", "dry_run", "table")
    assert {t: actions.channel_of(t) for t in actions.action_type_names()} == {
        "task": "table", "email": "smtp", "field_update": "table", "webhook": "webhook",
        "notification": "webhook"}


def test_the_engine_and_the_action_types_import_no_later_stage() -> None:
    """Action types live with the specs, so the engine still needs only specs and itself."""
    code = ("import sys, cswf.engine.tick, cswf.specs.actions\n"
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('cswf.')}))")
    source = str(Path(cswf.__file__).parents[1])  # this cswf, not an installed one
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": source}).stdout
    assert out.strip() == "['engine', 'registry', 'specs']"
