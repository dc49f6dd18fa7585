"""The tick calendar: which ticks lie between two times."""

from datetime import datetime as at

import pytest

from cswf.calendar import TickCalendar

EVERY_3H = TickCalendar("0 */3 * * *", at(2026, 5, 31))


def test_ticks_between_keeps_only_ticks_inside_the_bounds() -> None:
    assert EVERY_3H.between(at(2026, 5, 31, 1), at(2026, 5, 31, 2)) == []
    assert EVERY_3H.between(at(2026, 5, 31, 1), at(2026, 5, 31, 7)) == [
        at(2026, 5, 31, 3), at(2026, 5, 31, 6)]
    assert EVERY_3H.between(at(2026, 6, 1, 3), at(2026, 6, 1, 3)) == [at(2026, 6, 1, 3)]


def test_ticks_before_the_first_tick_do_not_exist() -> None:
    assert EVERY_3H.between(at(2026, 5, 1), at(2026, 5, 31, 3)) == [
        at(2026, 5, 31), at(2026, 5, 31, 3)]
    assert EVERY_3H.previous(at(2026, 5, 31)) is None
    assert EVERY_3H.latest(at(2026, 5, 30)) is None


def test_a_quarter_has_720_ticks_and_each_knows_its_neighbours() -> None:
    ticks = EVERY_3H.between(at(2026, 5, 31), at(2026, 8, 28, 21))
    assert len(ticks) == 720
    assert EVERY_3H.previous(ticks[1]) == ticks[0]
    assert EVERY_3H.next(ticks[0]) == ticks[1]
    assert EVERY_3H.latest(at(2026, 6, 1, 4, 59)) == at(2026, 6, 1, 3)
    assert EVERY_3H.is_tick(at(2026, 6, 1, 3)) and not EVERY_3H.is_tick(at(2026, 6, 1, 4))


def test_a_start_between_cron_times_begins_at_the_next_one() -> None:
    calendar = TickCalendar("0 */3 * * *", at(2026, 5, 31, 1, 30))
    assert calendar.first == at(2026, 5, 31, 3)
    assert calendar.next(at(2026, 5, 1)) == at(2026, 5, 31, 3)


def test_a_cron_that_is_not_one_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="tick_cron 'every 3 hours' is not a cron expression"):
        TickCalendar("every 3 hours", at(2026, 5, 31))
