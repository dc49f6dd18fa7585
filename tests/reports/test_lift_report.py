"""The objective's lift: the treatment group's met rate against the control group's, both
judged within the holdout window, with Newcombe's interval checked against the paper's example."""

from __future__ import annotations

from pathlib import Path

from report_book import Book

from cswf.project.reports import refresh_reports
from cswf.settings import Settings

TRIAL = """
name: lift_trial
owner: {user: ana@example.com}
state: enabled
entry: {field: tier, op: eq, value: enterprise}
objective:
  condition: {field: seat_utilisation_pct, op: gt, value: 40}
holdout: {percent: 50, window_days: 30}
steps:
  - name: nudge
    actions: [{type: email, subject: Hi, body: Hi}]
"""

UNUSED = TRIAL.replace("name: lift_trial", "name: lift_unused")


def lift_book(book: Book) -> None:
    """Newcombe (1998), table II, example (a): 56 of 70 treated met, 48 of 80 in control.
    All enter on 06-01 (window closes 07-01; last tick 07-20); met ones met on 06-05."""
    book.specs(TRIAL, UNUSED)
    book.tick_every("06-01", "07-20")
    for cohort, size, met in (("treatment", 70, 56), ("control", 80, 48)):
        for k in range(size):
            book.enrollment("lift_trial", f"{cohort[0]}{k:02d}", "06-01", cohort=cohort,
                            objective_met="06-05" if k < met else None)
    # Not counted: met after its window (treated, day 35) counts as not met ...
    book.enrollment("lift_trial", "late", "06-01", cohort="treatment", objective_met="07-06")
    # ... (so 56 of 71), a manual deploy (no cohort), and windows still open (pending).
    book.enrollment("lift_trial", "manual", "06-01", objective_met="06-02")
    book.enrollment("lift_trial", "new_t", "07-10", cohort="treatment", objective_met="07-11")
    book.enrollment("lift_trial", "new_c", "07-10", cohort="control")
    book.build()


def test_the_lift_and_its_newcombe_interval(book: Book) -> None:
    lift_book(book)
    rows = book.rows("SELECT workflow, holdout_percent, window_days, treated, treated_met, "
                     "treated_met_rate, control, control_met, control_met_rate, lift, lift_low, "
                     "lift_high, significant, pending FROM objective_lift ORDER BY workflow")
    assert rows == [
        ("lift_trial", 50.0, 30, 71, 56, 0.7887, 80, 48, 0.6, 0.1887, 0.0409, 0.3237, True, 2),
        ("lift_unused", 50.0, 30, 0, 0, None, 0, 0, None, None, None, None, False, 0),
    ]


def test_newcombes_published_example(book: Book) -> None:
    """Without the late one: 56/70 - 48/80 = 0.2, interval 0.0524 to 0.3339 (the paper's
    method 10)."""
    book.specs(TRIAL)
    book.tick_every("06-01", "07-20")
    for cohort, size, met in (("treatment", 70, 56), ("control", 80, 48)):
        for k in range(size):
            book.enrollment("lift_trial", f"{cohort[0]}{k:02d}", "06-01", cohort=cohort,
                            objective_met="06-05" if k < met else None)
    book.build()
    assert book.rows("SELECT lift, lift_low, lift_high FROM objective_lift") == [
        (0.2, 0.0524, 0.3339)]


def test_the_control_group_is_not_in_the_step_funnel(book: Book) -> None:
    lift_book(book)  # 72 treated and 1 manual deploy at the first step; 81 in control
    assert book.rows("SELECT step_name, reached, waiting_now FROM step_funnel "
                     "WHERE workflow = 'lift_trial' AND step = 0") == [("nudge", 73, 73)]


def test_reports_of_a_warehouse_made_before_holdouts_build_before_its_next_tick(
    book: Book, tmp_path: Path
) -> None:
    """`cswf reports` right after upgrading cswf: step_funnel reads `cohort`, which the next tick
    would add; the reports build adds it first."""
    book.con.execute("ALTER TABLE enrollment_history DROP COLUMN cohort")
    built = refresh_reports(book.con, Settings(root=tmp_path, bi_dir=tmp_path / "bi"))
    assert built.rows["step_funnel"] == 0
