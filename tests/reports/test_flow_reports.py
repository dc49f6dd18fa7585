"""step_funnel and workflow_daily on four hand-written enrollments of a three-step flow."""

from __future__ import annotations

from datetime import date

from report_book import Book

NURTURE = """
name: nurture
owner: {user: ana@example.com}
category: Nurture
state: enabled
entry: {field: tier, op: eq, value: smb}
steps:
  - name: welcome
    actions: [{type: email, subject: Hi, body: Hi}]
  - name: wait_a_week
    delay: {days: 7}
  - name: check_in
    actions: [{type: task, title: "Check in"}]
"""


def nurture_book(book: Book) -> None:
    """p1 went all the way; p2 and p4 wait in the delay; p3 exited there."""
    book.specs(NURTURE)
    book.tick_every("06-01", "06-10")  # the last tick: 06-10 00:00
    p1 = book.enrollment("nurture", "p1", "06-01", status="completed", closed="06-08", step=3,
                         step_name="(end of flow)")
    p2 = book.enrollment("nurture", "p2", "06-03", step=1, step_name="wait_a_week")
    p3 = book.enrollment("nurture", "p3", "06-03", status="exited", closed="06-05", step=1,
                         step_name="wait_a_week", reason="exit conditions met: stage eq 'x'")
    p4 = book.enrollment("nurture", "p4", "06-06", step=1, step_name="wait_a_week")
    book.advanced(p1, "06-01", 0)
    book.advanced(p1, "06-08", 1, 2)
    for enrollment, day in ((p2, "06-03"), (p3, "06-03"), (p4, "06-06")):
        book.advanced(enrollment, day, 0)
    for enrollment, day in ((p1, "06-01"), (p2, "06-03"), (p3, "06-03"), (p4, "06-06")):
        book.action(f"{enrollment}/s0.a0", day, "email")
    book.action(f"{p1}/s2.a0", "06-08", "task")
    book.event(f"{p3}/s0.a0", "failed", "06-04 09:00")  # its email finally failed
    book.build()


def test_the_funnel_counts_each_enrollment_once_per_step(book: Book) -> None:
    nurture_book(book)
    rows = book.rows("SELECT step, step_name, step_kind, reached, waiting_now, passed, exited, "
                     "exited_exit_conditions, exited_other FROM step_funnel ORDER BY step")
    assert rows == [
        # step, name, kind, reached, waiting now, passed, exited, by exit conditions, other
        (0, "welcome", "action", 4, 0, 4, 0, 0, 0),
        (1, "wait_a_week", "delay", 4, 2, 1, 1, 1, 0),
        (2, "check_in", "action", 1, 0, 1, 0, 0, 0),
        (3, "(end of flow)", "end", 1, 0, 1, 0, 0, 0),
    ]


def test_daily_counts_entries_actives_closes_actions_and_failures(book: Book) -> None:
    nurture_book(book)
    rows = book.rows("SELECT day, entered, active, completed, exited, actions, emails, tasks, "
                     "failed_deliveries FROM workflow_daily ORDER BY day")
    assert rows == [
        # day, entered, active at the day's last tick, completed, exited, actions, emails,
        # tasks, failed deliveries
        (date(2026, 6, 1), 1, 1, 0, 0, 1, 1, 0, 0),
        (date(2026, 6, 2), 0, 1, 0, 0, 0, 0, 0, 0),
        (date(2026, 6, 3), 2, 3, 0, 0, 2, 2, 0, 0),
        (date(2026, 6, 4), 0, 3, 0, 0, 0, 0, 0, 1),
        (date(2026, 6, 5), 0, 2, 0, 1, 0, 0, 0, 0),
        (date(2026, 6, 6), 1, 3, 0, 0, 1, 1, 0, 0),
        (date(2026, 6, 7), 0, 3, 0, 0, 0, 0, 0, 0),
        (date(2026, 6, 8), 0, 2, 1, 0, 1, 0, 1, 0),
        (date(2026, 6, 9), 0, 2, 0, 0, 0, 0, 0, 0),
        (date(2026, 6, 10), 0, 2, 0, 0, 0, 0, 0, 0),
    ]
    assert book.rows("SELECT DISTINCT workflow, category FROM workflow_daily") == [
        ("nurture", "Nurture")]
