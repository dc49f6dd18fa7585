"""The objective after exit: met 4 days after completing counts, day 31 does not; the
breakdown (met inside, met after exit, not met, still inside) and the daily trend."""

from __future__ import annotations

from report_book import Book, at

ADOPTION = """
name: adoption
owner: {user: ana@example.com}
state: enabled
entry: {field: tier, op: eq, value: enterprise}
objective:
  condition: {field: seat_utilisation_pct, op: gt, value: 40}
steps:
  - name: nudge
    actions: [{type: email, subject: Hi, body: Hi}]
"""


def adoption_book(book: Book) -> None:
    """Five accounts enter on 06-01; daily ticks to 07-20; seat utilisation 30% unless said."""
    book.specs(ADOPTION)  # no category: the default one, Nurture
    book.tick_every("06-01", "07-20")
    for account in ("met_inside", "day_4", "day_31", "recent", "active"):
        book.account(account, account.title())
    book.facts("met_inside", "06-01", "07-20", seat_utilisation_pct=30.0)
    book.facts("met_inside", "06-03", "07-20", seat_utilisation_pct=50.0)
    book.facts("day_4", "06-01", "07-20", seat_utilisation_pct=30.0)
    book.facts("day_4", "06-14", "07-20", seat_utilisation_pct=45.0)     # 4 days after 06-10
    book.facts("day_31", "06-01", "07-20", seat_utilisation_pct=30.0)
    book.facts("day_31", "07-11", "07-20", seat_utilisation_pct=45.0)    # 31 days after 06-10
    book.facts("recent", "06-01", "07-20", seat_utilisation_pct=30.0)
    book.facts("active", "06-01", "07-20", seat_utilisation_pct=30.0)
    book.enrollment("adoption", "met_inside", "06-01", status="completed", closed="06-05",
                    objective_met="06-03")
    book.enrollment("adoption", "day_4", "06-01", status="completed", closed="06-10")
    book.enrollment("adoption", "day_31", "06-01", status="exited", closed="06-10",
                    reason="exit conditions met: stage eq 'churned'")
    book.enrollment("adoption", "recent", "06-01", status="completed", closed="07-01")
    book.enrollment("adoption", "active", "06-01")
    book.build()


def test_met_within_30_days_after_leaving_counts_and_day_31_does_not(book: Book) -> None:
    adoption_book(book)
    rows = book.rows("SELECT participant_id, outcome, met_inside_at, met_after_exit_at, "
                     "days_to_met, window_open FROM objective_outcomes ORDER BY 1")
    assert rows == [
        ("active", "still_inside", None, None, None, False),
        ("day_31", "not_met", None, None, None, False),
        ("day_4", "met_after_exit", None, at("06-14"), 13.0, False),
        ("met_inside", "met_inside", at("06-03"), None, 2.0, False),
        ("recent", "not_met", None, None, None, True),  # left 19 days ago: still watched
    ]


def test_objective_performance_breaks_the_participants_down(book: Book) -> None:
    adoption_book(book)
    rows = book.rows(
        "SELECT workflow, category, objective_field, participants, enrollments, met_inside, "
        "met_after_exit, met, not_met, not_met_window_open, still_inside, met_rate, "
        "median_days_to_met, avg_days_to_met, after_exit_tracked FROM objective_performance")
    assert rows == [
        ("adoption", "Nurture", "seat_utilisation_pct", 5, 5, 1, 1, 2, 2, 1, 1, 0.4,
         7.5, 7.5, True),
    ]


def test_the_daily_trend_after_exit(book: Book) -> None:
    adoption_book(book)
    rows = book.rows("SELECT day_after_exit, observed, avg_value, median_value, meeting, "
                     "meeting_rate FROM objective_trend WHERE day_after_exit IN (0, 3, 4, 20, 30) "
                     "ORDER BY 1")
    assert rows == [
        # met_inside 50, day_4 30, day_31 30, recent 30
        (0, 4, 35.0, 30.0, 1, 0.25),
        (3, 4, 35.0, 30.0, 1, 0.25),
        (4, 4, 38.75, 37.5, 2, 0.5),   # day_4 reached 45 on its day 4
        (20, 3, 41.67, 45.0, 2, 0.6667),  # recent left 07-01: day 20 is after the last tick
        (30, 3, 41.67, 45.0, 2, 0.6667),  # day_31 still 30 on its day 30
    ]
    values = book.rows("SELECT day_after_exit, value_number, meets FROM objective_after_exit "
                       "WHERE participant_id = 'day_31' AND day_after_exit >= 29 ORDER BY 1")
    assert values == [(29, 30.0, False), (30, 30.0, False)]  # nothing read on day 31
