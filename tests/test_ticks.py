"""The tick calendar: which ticks lie between two times."""

from datetime import datetime as at

from cswf.calendar import is_tick, previous_tick, tick_partitions, ticks_between

EVERY_3H = tick_partitions("0 */3 * * *", at(2026, 5, 31))


def test_ticks_between_keeps_only_ticks_inside_the_bounds() -> None:
    assert ticks_between(EVERY_3H, at(2026, 5, 31, 1), at(2026, 5, 31, 2)) == []
    assert ticks_between(EVERY_3H, at(2026, 5, 31, 1), at(2026, 5, 31, 7)) == [
        at(2026, 5, 31, 3), at(2026, 5, 31, 6)]
    assert ticks_between(EVERY_3H, at(2026, 6, 1, 3), at(2026, 6, 1, 3)) == [at(2026, 6, 1, 3)]


def test_ticks_before_the_first_tick_do_not_exist() -> None:
    assert ticks_between(EVERY_3H, at(2026, 5, 1), at(2026, 5, 31, 3)) == [
        at(2026, 5, 31), at(2026, 5, 31, 3)]
    assert previous_tick(EVERY_3H, at(2026, 5, 31)) is None


def test_a_quarter_has_720_ticks_and_each_knows_its_predecessor() -> None:
    ticks = ticks_between(EVERY_3H, at(2026, 5, 31), at(2026, 8, 28, 21))
    assert len(ticks) == 720
    assert previous_tick(EVERY_3H, ticks[1]) == ticks[0]
    assert is_tick(EVERY_3H, at(2026, 6, 1, 3)) and not is_tick(EVERY_3H, at(2026, 6, 1, 4))
