"""Template rendering: the vectorized path gives exactly what Jinja2 gives."""

from __future__ import annotations

from datetime import date

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from cswf.engine import render as render_module
from cswf.engine.render import render

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="{}%#"), max_size=12)


def jinja(frame: pl.DataFrame, text: str, autoescape: bool) -> list[str | None]:
    template = render_module._compiled(text, autoescape)
    return [template.render(row) for row in frame.iter_rows(named=True)]


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.one_of(st.none(), texts), min_size=1, max_size=5),
    seats=st.data(),
    before=texts,
    after=texts,
    autoescape=st.booleans(),
)
def test_plain_substitutions_are_vectorized_and_equal_to_jinja(
    names, seats, before, after, autoescape
) -> None:
    counts = seats.draw(st.lists(st.one_of(st.none(), st.integers(-10**6, 10**6)),
                                 min_size=len(names), max_size=len(names)))
    frame = pl.DataFrame({"name": names, "seats": counts, "day": [date(2026, 5, 1)] * len(names)},
                         schema={"name": pl.String, "seats": pl.Int64, "day": pl.Date})
    text = f"{before}{{{{ name }}}}:{{{{ seats }}}} on {{{{ day }}}}{after}"
    assert render_module._vectorized(frame, text, {}, autoescape) is not None
    out = render(frame, text, {}, autoescape=autoescape)
    assert out["rendered"].to_list() == jinja(frame, text, autoescape)


def test_templates_with_filters_fall_back_to_jinja_once_per_distinct_input() -> None:
    frame = pl.DataFrame({"score": [55.25, 55.25, 71.0]})
    out = render(frame, "{{ score | round }} / {{ workflow }}", {"workflow": "alert"})
    assert out["rendered"].to_list() == ["55.0 / alert", "55.0 / alert", "71.0 / alert"]


def test_a_name_that_does_not_exist_is_an_error_not_an_empty_string() -> None:
    out = render(pl.DataFrame({"a": [1]}), "Hello {{ nobody }}", {})
    assert out.row(0) == (None, "UndefinedError: 'nobody' is undefined")


def test_html_templates_escape_values() -> None:
    frame = pl.DataFrame({"name": ["<script>x</script> & co"]})
    out = render(frame, "<p>{{ name }}</p>", {}, autoescape=True)
    assert out["rendered"].item() == "<p>&lt;script&gt;x&lt;/script&gt; &amp; co</p>"


def test_hostile_templates_fail_closed_one_participant_at_a_time() -> None:
    frame = pl.DataFrame({"name": ["<script>alert(1)</script>"], "n": [3]})
    attacks = {
        "{{ name.__class__.__mro__ }}": "SecurityError: access to attribute '__class__' of "
                                        "'str' object is unsafe.",
        "{{ ''.__class__ }}": "SecurityError: access to attribute '__class__' of 'str' object "
                              "is unsafe.",
        "{% for i in range(10**9) %}x{% endfor %}": "OverflowError: Range too big. The sandbox "
                                                    "blocks ranges larger than MAX_RANGE "
                                                    "(100000).",
        "{{ 'x' * 10**8 }}": "SecurityError: repetition too large",
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}":
            "RenderTimeout: rendering took longer than 1s",
    }
    for text, error in attacks.items():
        assert render(frame, text, {}).row(0) == (None, error), text
    safe = render(frame, "<b>{{ name }}</b> x{{ n * 2 }}", {}, autoescape=True)
    assert safe["rendered"].item() == "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b> x6"


def test_related_account_fields_read_as_attributes_of_account() -> None:
    import polars as pl

    from cswf.engine.render import render
    from cswf.specs.loader import template_variables

    frame = pl.DataFrame({"contact_name": ["Ann", "Bo"], "account.account_name": ["Acme", "Zed"]})
    text = "{{ contact_name }} at {{ account.account_name }}"
    assert template_variables(text) == {"contact_name", "account.account_name"}
    assert render(frame, text, {})["rendered"].to_list() == ["Ann at Acme", "Bo at Zed"]
    shouted = render(frame, "{{ account.account_name | upper }}", {})
    assert shouted["rendered"].to_list() == ["ACME", "ZED"]


def test_last_event_reads_an_events_properties_in_a_template() -> None:
    def answer(score: int, at: int) -> dict:
        return {"event_type": "nps_response", "occurred_at": date(2026, 6, at),
                "properties": f'{{"score": {score}, "comment": "at {at}"}}'}

    ticket = {"event_type": "ticket_opened", "occurred_at": date(2026, 6, 9),
              "properties": None}
    frame = pl.DataFrame({"recent_events": [[answer(9, 1), answer(4, 8), ticket], [ticket]]})
    text = ("NPS {{ (recent_events | last_event('nps_response')).score }} on "
            "{{ (recent_events | last_event('nps_response')).occurred_at }}, then "
            "{{ (recent_events | last_event).event_type }}")
    out = render(frame, text, {})
    assert out["rendered"].to_list()[0] == "NPS 4 on 2026-06-08, then ticket_opened"
    assert out["rendered"][1] is None and "UndefinedError" in out["error"][1]
