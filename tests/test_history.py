"""Re-running an old tick never forgets what was delivered (issue #10): refused in one line
without --rewrite-delivered; with it the delivered actions are kept as superseded."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from test_cli import project, runner
from test_lifecycle import query

from cswf.cli import app
from cswf.demo.generate import generate_book

HELLO = """
name: hello
owner: {field: csm_email}
state: enabled
entry: {field: tier, op: in, value: [enterprise, mid_market, smb]}
reentry: {mode: none}
steps:
  - name: hello
    actions: [{type: task, title: "Hi {{ account_name }}"}]
"""


@pytest.fixture()
def delivered(tmp_path: Path) -> Path:
    """Three ticks run and delivered (the default dry run: previewed)."""
    root = project(tmp_path, {"hello.yaml": HELLO})
    generate_book(root / "landing", accounts=40, days=40, start=date(2026, 5, 1))
    assert cli(root, "run", "--start", "2026-05-31", "--end", "2026-05-31T06:00")[0] == 0
    assert cli(root, "deliver", "--now", "2026-05-31T07:00")[0] == 0
    return root


def cli(root: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--root", str(root)], terminal_width=400)
    return result.exit_code, result.stdout, result.stderr


def test_a_rerun_that_would_rewrite_delivered_actions_needs_the_flag_and_forgets_nothing(
        delivered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = delivered
    (tasks,) = query(root, "SELECT count(*) FROM actions_outbox")[0]
    assert tasks > 0 and query(root, "SELECT DISTINCT status FROM deliveries") == [
        ("previewed",)]
    spec = root / "workflow_specs" / "hello.yaml"
    spec.write_text(HELLO.replace("Hi {{", "Hello {{"))  # a text-only edit

    code, out, err = cli(root, "tick", "--as-of", "2026-05-31T00:00")
    assert code == 1
    assert err == (f"error: tick 2026-05-31 00:00: re-running it would rewind 3 ticks holding "
                   f"{tasks} delivered actions ({tasks} task) — pass --rewrite-delivered to "
                   "rewrite them (delivered actions are kept as superseded, never deleted)\n")
    assert query(root, "SELECT count(*) FROM tick_log") == [(3,)]

    code, out, err = cli(root, "tick", "--as-of", "2026-05-31T00:00", "--rewrite-delivered")
    assert code == 0, err
    assert (f"rewriting from tick 2026-05-31 00:00: 3 ticks, {tasks} delivered actions kept "
            f"as superseded ({tasks} task)") in out
    assert query(root, "SELECT count(*), count(DISTINCT status) FROM deliveries") == [(tasks, 1)]
    # Every task was emitted at the first tick: the re-run emits the same ids, retitled.
    assert query(root, "SELECT count(*) FROM actions_outbox") == [(tasks,)]
    assert query(root, "SELECT fate, status, reason, delivery_status, count(*) FROM "
                       "superseded_actions GROUP BY ALL") == [
        ("changed", "superseded", "rewound at tick 2026-05-31 00:00 by re-run", "previewed",
         tasks)]
    assert query(root, "SELECT DISTINCT subject LIKE 'Hi %' FROM superseded_actions") == [
        (True,)]
    assert query(root, "SELECT DISTINCT subject LIKE 'Hello %' FROM actions_outbox") == [(True,)]

    # The same re-run again is a no-op: same action ids, same content; in shards too.
    code, out, err = cli(root, "tick", "--as-of", "2026-05-31T00:00")
    assert code == 0, err
    assert "1 ticks in" in out and "0 written, 1 unchanged, 0 rewritten" in out
    monkeypatch.setenv("CSWF_SHARDS", "3")
    code, out, err = cli(root, "tick", "--as-of", "2026-05-31T00:00")
    assert code == 0, err
    assert " (3 shards each): 0 written, 1 unchanged, 0 rewritten" in out
    assert query(root, "SELECT count(*) FROM superseded_actions") == [(tasks,)]
