"""A real SIGKILL at each point of a run (issue #10, scenarios 1-4), against a database file and a
real SMTP server on 127.0.0.1: the run is started again and the outcome is the uninterrupted
run's, nothing lost and nothing sent twice.

The killed run is a child process running the project stages (ingest, facts, ticks, delivery);
`CSWF_TEST_KILL` names the point where it kills itself with SIGKILL:

- `evaluated:N`: the N-th tick was evaluated and not yet written;
- `written:N`: the N-th tick's state, transitions and outbox were committed (delivery not run);
- `between:K`: K emails were sent and recorded, the next not yet claimed;
- `accepted:K`: the SMTP server answered 250 to the K-th email, which is not yet marked sent;
- `hooked:K`: the webhook receiver applied the K-th webhook and answered 200, which is not yet
  marked sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from test_cli import project
from test_delivery_servers import SmtpRecorder, WebhookReceiver, smtp_server, webhook_server

from cswf import project as stages
from cswf.delivery import resolve_unknown
from cswf.demo.generate import generate_book
from cswf.settings import load_settings
from cswf.store.warehouse import connect

SRC = Path(__file__).resolve().parents[1] / "src"
START, END = datetime(2026, 5, 31), datetime(2026, 6, 1, 6)
NOW = datetime(2026, 6, 1, 7)

HELLO = """
name: hello
owner: {field: csm_email}
state: enabled
entry: {field: tier, op: in, value: [enterprise, mid_market, smb]}
reentry: {mode: none}
steps:
  - name: welcome
    actions: [{type: email, subject: "Welcome {{ account_name }}", body: "Hello"}]
  - name: wait
    delay: {days: 1}
  - name: follow_up
    actions: [{type: email, subject: "How is it going, {{ account_name }}?", body: "Hi"},
              {type: task, title: "Call {{ account_name }}"}]
"""

ALERT = """
name: alert
owner: {field: csm_email}
state: enabled
entry: {field: tier, op: in, value: [enterprise, mid_market, smb]}
reentry: {mode: none}
steps:
  - name: open_a_ticket
    actions: [{type: webhook, text: "Onboard {{ account_name }}"}]
"""

# The child: the project's stages in order, killed where CSWF_TEST_KILL says.
_CHILD = """
import os, signal, sys
from datetime import datetime

from cswf import project
import importlib
delivery = importlib.import_module("cswf.delivery.deliver")
from cswf.project import deliver as project_deliver
from cswf.project import ticks as ticks_module
from cswf.settings import load_settings
from cswf.store.warehouse import connect

point, _, n = os.environ["CSWF_TEST_KILL"].partition(":")
n = int(n)
calls = {"ticks": 0, "attempts": 0, "sends": 0, "hooks": 0}


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


real_write = ticks_module.write_tick
def write_tick(con, result, **kwargs):
    calls["ticks"] += 1
    if point == "evaluated" and calls["ticks"] == n:
        die()
    outcome = real_write(con, result, **kwargs)
    if point == "written" and calls["ticks"] == n:
        die()
    return outcome
ticks_module.write_tick = write_tick

real_attempt = delivery._attempt
def attempt(*args, **kwargs):
    if point == "between" and calls["attempts"] == n:
        die()
    calls["attempts"] += 1
    return real_attempt(*args, **kwargs)
delivery._attempt = attempt

real_senders = project_deliver.default_senders
def default_senders(config):
    senders = real_senders(config)
    smtp = senders["smtp"]
    real_send = smtp.send
    def send(action, now):
        result = real_send(action, now)
        calls["sends"] += 1
        if point == "accepted" and calls["sends"] == n:
            assert result.outcome == "sent", result
            die()
        return result
    smtp.send = send
    hook = senders.get("webhook")
    if hook is not None:
        real_post = hook.send
        def post(action, now):
            result = real_post(action, now)
            calls["hooks"] += 1
            if point == "hooked" and calls["hooks"] == n:
                assert result.outcome == "sent", result
                die()
            return result
        hook.send = post
    return senders
project_deliver.default_senders = default_senders

from pathlib import Path
settings = load_settings(Path(sys.argv[1]))
start, end, now = (datetime.fromisoformat(a) for a in sys.argv[2:5])
ticks = project.ticks_in(settings, start, end)
with connect(settings.database_path) as con:
    project.ingest(con, settings, ticks[-1])
    project.store_facts(con, settings, ticks)
    project.run_ticks(con, settings, project.load_workflows(settings), ticks)
    project.deliver_outbox(con, settings, now)
print("finished")
"""

TABLES = {"actions_outbox": "action_id", "transitions": "ALL",
          "enrollment_history": "workflow, participant_id, valid_from"}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("book") / "landing"
    generate_book(folder, accounts=12, days=35, start=date(2026, 5, 1), contacts=False)
    return folder


def make_project(root: Path, landing: Path, port: int, hook_url: str | None = None) -> Path:
    project(root, {"hello.yaml": HELLO, **({"alert.yaml": ALERT} if hook_url else {})})
    with (root / "cswf.yaml").open("a") as config:
        config.write(
            "delivery:\n  dry_run: false\n  quiet_hours: null\n  cap_per_day: null\n"
            "  max_age_hours: null\n  rate_limits: {smtp: null, webhook: null}\n"
            f"  smtp: {{host: 127.0.0.1, port: {port}, security: none, "
            "from_address: 'CS <cs@vendor.test>'}\n")
        if hook_url:
            config.write(f"  webhook: {{url: '{hook_url}', backoff_seconds: 0.01}}\n")
    text = (root / "cswf.yaml").read_text().replace(str(root / "landing"), str(landing))
    (root / "cswf.yaml").write_text(text)
    return root


def killed_run(root: Path, kill: str) -> subprocess.CompletedProcess[str]:
    script = root / "child.py"
    script.write_text(textwrap.dedent(_CHILD))
    return subprocess.run(
        [sys.executable, str(script), str(root), START.isoformat(), END.isoformat(),
         NOW.isoformat()],
        env={**os.environ, "PYTHONPATH": str(SRC), "CSWF_TEST_KILL": kill},
        capture_output=True, text=True, timeout=300, check=False)


def rerun(root: Path, now: datetime = NOW) -> None:
    """What an operator (or the schedule) does next: the same run, then delivery again."""
    settings = load_settings(root)
    ticks = stages.ticks_in(settings, START, END)
    with connect(settings.database_path) as con:
        stages.ingest(con, settings, ticks[-1])
        stages.store_facts(con, settings, ticks)
        stages.run_ticks(con, settings, stages.load_workflows(settings), ticks)
        stages.deliver_outbox(con, settings, now)


def dump(root: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        return {t: con.sql(f"FROM {t} ORDER BY {o}").fetchall() for t, o in TABLES.items()}


def query(root: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def received(recorder: SmtpRecorder) -> list[tuple[str, str]]:
    """(recipient, subject) of every message the server accepted, sorted."""
    return sorted((m.rcpt_tos[0], str(m.message["Subject"])) for m in recorder.messages)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, landing: Path
              ) -> tuple[dict[str, list[tuple]], list[tuple[str, str]]]:
    """The uninterrupted run: its tables and the messages it sent."""
    recorder = SmtpRecorder()
    with smtp_server(recorder) as port:
        root = make_project(tmp_path_factory.mktemp("reference"), landing, port)
        rerun(root)
    tables = dump(root)
    emails = query(root, "SELECT count(*) FROM actions_outbox WHERE action_type = 'email'")[0][0]
    ticks = {row[1] for row in tables["actions_outbox"]}
    assert emails >= 20 and len(ticks) >= 2, "the book should email at two ticks at least"
    assert len(recorder.messages) == emails
    assert len(set(received(recorder))) == emails
    return tables, received(recorder)


def _assert_as_uninterrupted(root: Path, recorder: SmtpRecorder,
                             reference: tuple[dict[str, list[tuple]], list[tuple[str, str]]]
                             ) -> None:
    tables, messages = reference
    assert dump(root) == tables  # nothing lost, nothing doubled in the warehouse
    assert received(recorder) == messages  # each email arrived exactly once
    assert query(root, "SELECT DISTINCT status FROM deliveries") == [("sent",)]
    before = len(recorder.messages)
    rerun(root, NOW + timedelta(hours=1))  # and running it all once more sends nothing
    assert len(recorder.messages) == before and dump(root) == tables


@pytest.mark.parametrize("kill", ["evaluated:1", "evaluated:5", "written:1", "written:5"])
def test_a_sigkill_around_a_ticks_write_loses_and_doubles_nothing(
        tmp_path: Path, landing: Path, smtp: tuple[SmtpRecorder, int], reference, kill: str
) -> None:
    """Scenarios 1 (after evaluation, before the write) and 2 (after the outbox write, before
    delivery): the child dies, nothing was sent; the re-run completes the ticks and sends each
    email once."""
    recorder, port = smtp
    root = make_project(tmp_path, landing, port)
    child = killed_run(root, kill)
    assert child.returncode == -9, child.stderr
    written = int(kill.split(":")[1]) - (kill.startswith("evaluated"))
    assert query(root, "SELECT count(*) FROM tick_log") == [(written,)]
    assert recorder.messages == []
    rerun(root)
    _assert_as_uninterrupted(root, recorder, reference)


@pytest.mark.parametrize("sent", [0, 3, 11])
def test_a_sigkill_after_k_of_n_sends_resumes_with_the_rest(
        tmp_path: Path, landing: Path, smtp: tuple[SmtpRecorder, int], reference, sent: int
) -> None:
    """Scenario 3: killed between two sends (k recorded, the next not yet claimed): the re-run
    sends the other n - k, none of the first k again."""
    recorder, port = smtp
    root = make_project(tmp_path, landing, port)
    child = killed_run(root, f"between:{sent}")
    assert child.returncode == -9, child.stderr
    assert len(recorder.messages) == sent
    assert query(root, "SELECT count(*) FROM deliveries WHERE status = 'sent' "
                       "AND action_type = 'email'") == [(sent,)]
    assert query(root, "SELECT count(*) FROM deliveries WHERE status = 'sending'") == [(0,)]
    rerun(root)
    _assert_as_uninterrupted(root, recorder, reference)


def test_a_sigkill_after_the_smtp_250_before_marking_never_resends(
        tmp_path: Path, landing: Path, smtp: tuple[SmtpRecorder, int], reference) -> None:
    """Scenario 4: the server accepted the 4th email, the child died before recording it: the
    row is left `sending`, the re-run marks it `unknown` (SMTP has no idempotency key) and
    never sends it again; a person confirming it went out completes the run."""
    recorder, port = smtp
    root = make_project(tmp_path, landing, port)
    child = killed_run(root, "accepted:4")
    assert child.returncode == -9, child.stderr
    assert len(recorder.messages) == 4
    (stuck,), = query(root, "SELECT action_id FROM deliveries WHERE status = 'sending'")
    rerun(root)
    assert query(root, "SELECT action_id FROM deliveries WHERE status = 'unknown'") == [(stuck,)]
    assert query(root, "SELECT count(*) FROM deliveries WHERE status NOT IN ('sent', 'unknown')"
                 ) == [(0,)]
    assert received(recorder) == reference[1]  # the 4th arrived once, from the killed run
    rerun(root, NOW + timedelta(hours=1))
    assert received(recorder) == reference[1]
    with connect(root / "cswf.duckdb") as con:  # the server log shows it went out
        resolve_unknown(con, stuck, "sent", NOW + timedelta(hours=2))
    _assert_as_uninterrupted(root, recorder, reference)


def test_re_running_the_whole_run_three_times_changes_and_sends_nothing(
        tmp_path: Path, landing: Path, smtp: tuple[SmtpRecorder, int], reference) -> None:
    """Scenario 5: every tick and the delivery run again three times over the same database
    file: every tick is `unchanged`, the tables are the first run's, no email goes out again."""
    recorder, port = smtp
    root = make_project(tmp_path, landing, port)
    rerun(root)
    assert dump(root) == reference[0] and received(recorder) == reference[1]
    log = query(root, "FROM tick_log ORDER BY ALL")
    for again in range(1, 4):
        rerun(root, NOW + timedelta(minutes=again))
        assert dump(root) == reference[0], f"re-run {again}"
        assert query(root, "FROM tick_log ORDER BY ALL") == log
        assert received(recorder) == reference[1], f"re-run {again}"
    assert query(root, "SELECT DISTINCT status, attempts FROM deliveries "
                       "WHERE action_type = 'email'") == [("sent", 1)]



def test_a_sigkill_after_the_webhook_was_applied_before_marking_applies_it_once(
        tmp_path: Path, landing: Path, smtp: tuple[SmtpRecorder, int]) -> None:
    """The receiver applied the 2nd webhook and answered 200; the child died before recording
    it: the row is left `sending`; the re-run retries it (webhooks are idempotent) with the same
    Idempotency-Key and body, and the receiver applies it once. Every other webhook and email
    goes out once."""
    recorder, port = smtp
    receiver = WebhookReceiver()
    with webhook_server(receiver) as url:
        root = make_project(tmp_path, landing, port, hook_url=url)
        child = killed_run(root, "hooked:2")
        assert child.returncode == -9, child.stderr
        assert receiver.effects == 2 and len(receiver.requests) == 2
        (stuck,), = query(root, "SELECT action_id FROM deliveries WHERE status = 'sending'")
        assert receiver.keys()[-1] == stuck
        rerun(root)
        hooks = [a for a, in query(root, "SELECT action_id FROM actions_outbox "
                                         "WHERE action_type = 'webhook' ORDER BY action_id")]
        assert len(hooks) >= 5
        assert sorted(receiver.applied) == hooks and receiver.effects == len(hooks)
        assert receiver.keys().count(stuck) == 2  # retried once, with the same key ...
        assert len({body for (headers, body) in receiver.requests
                    if headers["Idempotency-Key"] == stuck}) == 1  # ... and the same body
        assert len(receiver.requests) == len(hooks) + 1
        emails = query(root, "SELECT count(*) FROM actions_outbox WHERE action_type = 'email'")
        assert len(recorder.messages) == emails[0][0] == len(set(received(recorder)))
        assert query(root, "SELECT DISTINCT status FROM deliveries") == [("sent",)]
        requests, messages = len(receiver.requests), len(recorder.messages)
        rerun(root, NOW + timedelta(hours=1))  # and once more: nothing goes out again
        assert len(receiver.requests) == requests and len(recorder.messages) == messages
