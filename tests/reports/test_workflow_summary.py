"""Every number of workflow_summary on a hand-written case, and the effective category."""

from __future__ import annotations

from report_book import Book, at, spec
from test_objective_reports import adoption_book

from cswf.store.warehouse import record_versions

RENEWAL = """
name: renewal
owner: {user: ana@example.com}
category: Renewal
priority: 20
state: enabled
entry: {field: tier, op: eq, value: enterprise}
steps:
  - name: call
    actions: [{type: task, title: "Call"}]
"""

WIN_BACK = """
name: win_back
owner: {user: ana@example.com}
category: Escalations
steps:
  - name: call
    actions: [{type: task, title: "Call"}]
"""


def test_every_number_of_the_summary(book: Book) -> None:
    book.specs(RENEWAL, WIN_BACK)
    # renewal: one participant twice (completed, then active again), one completed, one exited
    book.enrollment("renewal", "r1", "06-01", status="completed", closed="06-11")  # 10 days
    book.enrollment("renewal", "r1", "06-20", n=2)
    book.enrollment("renewal", "r2", "06-02", status="completed", closed="06-07 12:00")  # 5.5
    book.enrollment("renewal", "r3", "06-03", status="exited", closed="06-04",
                    reason="exit conditions met: stage eq 'churned'")
    adoption_book(book)  # ticks to 07-20; met inside 1, met 4 days after completing 1, of 5

    rows = book.rows(
        "SELECT workflow, category, state, auto_deploy, priority, deployed, active, completed, "
        "exited, participants, avg_days_to_complete, objective_met, objective_met_after_exit, "
        "objective_met_rate, first_entry_at, last_entry_at, as_of FROM workflow_summary")
    assert rows == [
        # workflow, category, state, auto, priority, deployed, active, completed, exited,
        # participants, avg days, met, met after exit, rate, first entry, last entry, as of
        ("renewal", "Renewal", "enabled", True, 20, 4, 1, 2, 1, 3, 7.75, 0, 0, None,
         at("06-01"), at("06-20"), at("07-20")),
        ("adoption", "Nurture", "enabled", True, 100, 5, 1, 3, 1, 5, 14.33, 2, 1, 0.4,
         at("06-01"), at("06-01"), at("07-20")),
        ("win_back", "Escalations", "draft", False, 100, 0, 0, 0, 0, 0, None, 0, 0, None,
         None, None, at("07-20")),
    ]
    versions = book.rows("SELECT workflow, current_version FROM workflow_summary ORDER BY 1")
    assert versions == [(w, book.version(w)) for w in ("adoption", "renewal", "win_back")]


def test_a_spec_without_category_records_the_default_one_and_fills_old_rows(
        book: Book) -> None:
    """Versions recorded before the effective category was stored get it at the next tick."""
    record_versions(book.con, [spec(WIN_BACK.replace("category: Escalations\n", ""))],
                    at("06-01"))
    assert book.rows("SELECT category FROM workflow_versions") == [(None,)]
    record_versions(book.con, [spec(WIN_BACK.replace("category: Escalations\n", ""))],
                    at("06-02"), "Nurture")
    assert book.rows("SELECT category, first_seen_tick FROM workflow_versions") == [
        ("Nurture", at("06-01"))]
