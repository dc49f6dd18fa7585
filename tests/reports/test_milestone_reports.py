"""milestone_history and team_performance on hand-written milestones: ahead vs overdue, the
period boundaries (Sunday vs Monday, month ends), median vs average on a skewed set."""

from __future__ import annotations

from datetime import date

from report_book import Book, at

KICKOFF = """
name: kickoff
owner: {user: ana@example.com}
category: Onboarding
state: enabled
entry: {field: tier, op: eq, value: enterprise}
milestones:
  - {name: kickoff_call, trigger_days: 0, due_days: 5}
  - {name: go_live, trigger_days: 10, due_days: 30}
steps:
  - name: welcome
    actions: [{type: task, title: "Welcome"}]
"""


def test_history_tells_ahead_on_time_late_overdue_open_dropped_and_not_started(
        book: Book) -> None:
    book.specs(KICKOFF)
    book.tick_every("06-01", "06-10")  # the last tick: 06-10 00:00
    for who, done in (("ahead", "06-04"), ("on_time", "06-06"), ("late", "06-08 12:00"),
                      ("overdue", None)):
        enrollment = book.enrollment(  # the engine's state names the open milestone
            "kickoff", who, "06-01", current_milestone=None if done else "kickoff_call",
            milestone_due=None if done else "06-06")
        book.milestone(enrollment, "kickoff_call", started="06-01", due="06-06", done=done)
    book.milestone(book.enrollment("kickoff", "open", "06-08", current_milestone="kickoff_call",
                                   milestone_due="06-13"),
                   "kickoff_call", started="06-08", due="06-13")
    book.milestone(book.enrollment("kickoff", "gone", "06-01", status="exited",
                                   closed="06-03"),
                   "kickoff_call", started="06-01", due="06-06")
    book.build()

    rows = book.rows(
        "SELECT participant_id, milestone, status, started_at::DATE, due_at::DATE, "
        "completed_at, days_to_complete, days_early_late FROM milestone_history "
        "ORDER BY participant_id, milestone_order")
    assert rows == [
        # who,       milestone,     status,        started,           due,
        #                                          completed,          to complete, early/late
        ("ahead", "kickoff_call", "ahead", date(2026, 6, 1), date(2026, 6, 6),
         at("06-04"), 3.0, -2.0),
        ("ahead", "go_live", "not_started", None, date(2026, 7, 1), None, None, None),
        ("gone", "kickoff_call", "dropped", date(2026, 6, 1), date(2026, 6, 6),
         None, None, None),
        ("gone", "go_live", "dropped", None, date(2026, 7, 1), None, None, None),
        ("late", "kickoff_call", "late", date(2026, 6, 1), date(2026, 6, 6),
         at("06-08 12:00"), 7.5, 2.5),
        ("late", "go_live", "not_started", None, date(2026, 7, 1), None, None, None),
        ("on_time", "kickoff_call", "on_time", date(2026, 6, 1), date(2026, 6, 6),
         at("06-06"), 5.0, 0.0),
        ("on_time", "go_live", "not_started", None, date(2026, 7, 1), None, None, None),
        ("open", "kickoff_call", "open", date(2026, 6, 8), date(2026, 6, 13),
         None, None, None),
        ("open", "go_live", "not_started", None, date(2026, 7, 8), None, None, None),
        # still open 4 days after it was due, as of the last tick
        ("overdue", "kickoff_call", "overdue", date(2026, 6, 1), date(2026, 6, 6),
         None, None, 4.0),
        ("overdue", "go_live", "not_started", None, date(2026, 7, 1), None, None, None),
    ]

    # the dashboard counts every late milestone, done or not, with its days (not floored)
    dashboard = book.rows(
        "SELECT participant_id, current_milestone, current_milestone_days_late, "
        "milestones_overdue, milestone_overdue_days FROM workflow_dashboard "
        "WHERE participant_id IN ('ahead', 'late', 'overdue', 'open') ORDER BY 1")
    assert dashboard == [
        ("ahead", None, None, 0, 0.0),
        ("late", None, None, 1, 2.5),
        ("open", "kickoff_call", -3.0, 0, 0.0),  # due in 3 days
        ("overdue", "kickoff_call", 4.0, 1, 4.0),
    ]


def month_end_book(book: Book) -> None:
    book.specs(KICKOFF)
    book.tick_every("06-01", "07-02")
    for who, done in (("sunday", "06-07 23:00"), ("monday", "06-08 00:00"),
                      ("june_30", "06-30 21:00"), ("july_1", "07-01 00:00")):
        enrollment = book.enrollment("kickoff", who, "06-01")
        book.milestone(enrollment, "kickoff_call", started="06-01", due="07-15", done=done)
    book.build()


def test_periods_split_at_monday_and_at_the_first_of_the_month(book: Book) -> None:
    month_end_book(book)

    def period(kind: str) -> list[tuple]:
        return book.rows(
            "SELECT period_start, started, completed FROM team_performance "
            "WHERE period_type = ? AND milestone = '(all)' AND assignee = '(all)' "
            "ORDER BY period_start", kind)

    assert period("day") == [
        (date(2026, 6, 1), 4, 0),
        (date(2026, 6, 7), 0, 1),  # Sunday 23:00
        (date(2026, 6, 8), 0, 1),  # Monday 00:00
        (date(2026, 6, 30), 0, 1),
        (date(2026, 7, 1), 0, 1),
    ]
    assert period("week") == [
        (date(2026, 6, 1), 4, 1),   # Sunday 06-07 closes the ISO week of Monday 06-01
        (date(2026, 6, 8), 0, 1),   # Monday 06-08 opens the next
        (date(2026, 6, 29), 0, 2),  # the week of Monday 06-29 spans June 30 and July 1
    ]
    assert period("month") == [
        (date(2026, 6, 1), 4, 3),
        (date(2026, 7, 1), 0, 1),
    ]


def test_skewed_times_median_below_average_ahead_and_overdue(book: Book) -> None:
    book.specs(KICKOFF)
    book.tick_every("06-01", "06-20")  # the last tick: 06-20 00:00
    # (who, done, due, assignee): days to complete 1, 1, 2, 2 and 14
    for who, done, due, assignee in (
            ("m1", "06-02", "06-03", "ana@example.com"),   # 1 day ahead
            ("m2", "06-02", "06-03", "ana@example.com"),   # 1 day ahead
            ("m3", "06-03", "06-04", "ana@example.com"),   # 1 day ahead
            ("m4", "06-03", "06-03", "ana@example.com"),   # exactly on time
            ("m5", "06-15", "06-05", "ben@example.com"),   # 10 days late
            ("m6", None, "06-05", "ben@example.com")):     # open, 15 days overdue
        enrollment = book.enrollment("kickoff", who, "06-01")
        book.milestone(enrollment, "kickoff_call", started="06-01", due=due, done=done,
                       assignee=assignee)
    book.build()

    columns = ("started, completed, avg_days_to_complete, median_days_to_complete, "
               "p90_days_to_complete, overdue, overdue_days, ahead, ahead_days, on_time_rate")
    june = book.rows(f"SELECT assignee, {columns} FROM team_performance WHERE "
                     "period_type = 'month' AND milestone = 'kickoff_call' ORDER BY assignee")
    assert june == [
        # assignee, started, completed, avg, median, p90, overdue, days, ahead, days, on time
        ("(all)", 6, 5, 4.0, 2.0, 9.2, 2, 25.0, 3, 3.0, 0.6667),
        ("ana@example.com", 4, 4, 1.5, 1.5, 2.0, 0, 0.0, 3, 3.0, 1.0),
        ("ben@example.com", 2, 1, 14.0, 14.0, 14.0, 2, 25.0, 0, 0.0, 0.0),
    ]
    weeks = book.rows(f"SELECT period_start, {columns} FROM team_performance WHERE "
                      "period_type = 'week' AND milestone = '(all)' AND assignee = '(all)' "
                      "ORDER BY period_start")
    assert weeks == [
        # m6 fell due on Friday 06-05: overdue in that week, with its 15 days to the last tick
        (date(2026, 6, 1), 6, 4, 1.5, 1.5, 2.0, 1, 15.0, 3, 3.0, 0.8),
        (date(2026, 6, 15), 0, 1, 14.0, 14.0, 14.0, 1, 10.0, 0, 0.0, 0.0),
    ]
    # the per-workflow rows across milestones: only kickoff_call happened
    across = book.rows(f"SELECT {columns} FROM team_performance WHERE period_type = 'month' "
                       "AND milestone = '(all)' AND assignee = '(all)'")
    assert across == [june[0][1:]]
