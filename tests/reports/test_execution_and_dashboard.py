"""execution_metrics (success and failure rates, response times) and the dashboard's account
columns for contact and opportunity workflows."""

from __future__ import annotations

from datetime import date

from report_book import Book

EMAILS = """
name: emails
owner: {user: ana@example.com}
category: Nurture
state: enabled
entry: {field: tier, op: eq, value: smb}
steps:
  - name: hello
    actions:
      - {type: email, subject: Hi, body: Hi}
      - {type: task, title: "Call"}
"""

CHAMPIONS = """
name: champions
object: contact
owner: {user: ana@example.com}
category: Nurture
state: enabled
entry: {field: is_primary, op: eq, value: true}
steps:
  - name: intro
    actions: [{type: email, to: email, subject: Hi, body: Hi}]
"""

DEALS = """
name: deals
object: opportunity
owner: {user: ana@example.com}
category: Upsell
state: enabled
entry: {field: stage, op: eq, value: proposal}
steps:
  - name: push
    actions: [{type: task, title: "Push"}]
"""


def emails_book(book: Book) -> None:
    book.specs(EMAILS)
    book.tick_every("06-01", "06-07")
    # four runs on Monday 06-01 and Tuesday 06-02: an email and a task each
    opens = {"a": ("06-01 10:00", "06-01 11:00"),   # opened 1 hour after delivery
             "b": ("06-01 10:00", "06-01 12:00"),   # 2 hours
             "c": ("06-02 09:00", "06-02 18:00"),   # 9 hours
             "d": None}                             # failed: never delivered
    for who, opened in opens.items():
        day = "06-01" if who in "ab" else "06-02"
        enrollment = book.enrollment("emails", who, day, step=1, step_name="(end of flow)")
        email = book.action(f"{enrollment}/s0.a0", day, "email")
        task = book.action(f"{enrollment}/s0.a1", day, "task", due=f"{day} 00:00")
        book.delivered(task, "sent", day)
        if opened is None:
            book.delivered(email, "failed")
            book.event(email, "failed", "06-02 06:00")
            continue
        book.delivered(email, "sent", day)
        book.event(email, "delivered", opened[0])
        book.event(email, "opened", opened[1])
    book.event("emails/a/1/s0.a1", "completed", "06-02 00:00")  # 1 day after it was created
    book.event("emails/c/1/s0.a1", "completed", "06-06 00:00")  # 4 days
    book.event("emails/b/1/s0.a1", "completed", "06-09 00:00")  # after the last tick: not yet
    book.build()


def test_rates_and_response_times(book: Book) -> None:
    emails_book(book)

    rows = book.rows(
        "SELECT action_type, runs_started, actions, sent, failed, pending, success_rate, "
        "failure_rate, emails_opened, avg_hours_delivered_to_opened, "
        "median_hours_delivered_to_opened, tasks_completed, avg_days_created_to_completed, "
        "median_days_created_to_completed FROM execution_metrics "
        "WHERE period_type = 'week' ORDER BY action_type")
    assert rows == [
        # type, runs, actions, sent, failed, pending, success, failure, opened, avg h, median h,
        # tasks done, avg days, median days
        ("(all)", 4, 8, 7, 1, 0, 0.875, 0.125, 3, 4.0, 2.0, 2, 2.5, 2.5),
        ("email", None, 4, 3, 1, 0, 0.75, 0.25, 3, 4.0, 2.0, 0, None, None),
        ("task", None, 4, 4, 0, 0, 1.0, 0.0, 0, None, None, 2, 2.5, 2.5),
    ]
    days = book.rows("SELECT period_start, runs_started, actions FROM execution_metrics "
                     "WHERE period_type = 'day' AND action_type = '(all)' ORDER BY 1")
    assert days == [(date(2026, 6, 1), 2, 4), (date(2026, 6, 2), 2, 4)]


def accounts_book(book: Book) -> None:
    book.specs(CHAMPIONS, DEALS)
    book.tick_every("06-01", "06-03")
    book.account("ACC-1", "Acme", tier="enterprise", csm="Ana")
    book.account("ACC-2", "Globex", tier="smb", csm="Ben")
    book.contact("CON-1", "ACC-1")
    book.opportunity("OPP-1", "ACC-2")
    book.enrollment("champions", "CON-1", "06-01")
    book.enrollment("deals", "OPP-1", "06-02")
    book.build()


def test_contact_and_opportunity_rows_carry_their_accounts_name_tier_and_csm(
        book: Book) -> None:
    accounts_book(book)
    rows = book.rows("SELECT workflow, object, participant_id, account_id, account_name, tier, "
                     "csm, category FROM workflow_dashboard ORDER BY workflow")
    assert rows == [
        ("champions", "contact", "CON-1", "ACC-1", "Acme", "enterprise", "Ana", "Nurture"),
        ("deals", "opportunity", "OPP-1", "ACC-2", "Globex", "smb", "Ben", "Upsell"),
    ]
