"""Specs are bounded (lengths, nesting, numbers, encoding), and a workflow whose evaluation fails
anyway stops the tick with one message naming the workflow and the part of its spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_harness import START, Run, spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from panics import panic_class

from cswf.engine.failures import EvaluationFailed, evaluating
from cswf.specs.loader import SpecErrors, load_specs, parse_spec

BASE = """
name: bounded
owner: {user: cs@example.com}
state: enabled
entry: {field: tier, op: eq, value: enterprise}
steps:
  - name: hello
    actions: [{type: task, title: Hello}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        parse_spec(text, Path("bounded.yaml"))
    return [str(error) for error in caught.value.errors]


def nested(levels: int) -> str:
    return "{not: " * levels + "{field: tier, op: eq, value: x}" + "}" * levels


@pytest.mark.parametrize(("change", "expected"), [
    (("    actions: [{type: task, title: Hello}]\n",
      "    actions: [{type: task, title: Hello}]\n  - name: pause\n    delay: {days: 100000000}\n"
      "  - name: bye\n    actions: [{type: task, title: Bye}]\n"),
     "bounded.yaml: steps.1.delay.days: Input should be less than or equal to 3650 "
     "(got 100000000)"),
    (("    actions: [{type: task, title: Hello}]\n",
      "    actions: [{type: task, title: Hello}]\n  - name: pause\n    delay: {months: 121}\n"
      "  - name: bye\n    actions: [{type: task, title: Bye}]\n"),
     "bounded.yaml: steps.1.delay.months: Input should be less than or equal to 120 (got 121)"),
    (("    actions: [{type: task, title: Hello}]\n",
      "    actions: [{type: task, title: Hello}]\n  - name: hold\n    wait: {max_days: 4000, "
      "until: {field: tier, op: eq, value: smb}}\n  - name: bye\n"
      "    actions: [{type: task, title: Bye}]\n"),
     "bounded.yaml: steps.1.wait.max_days: Input should be less than or equal to 3650 "
     "(got 4000)"),
    (("{type: task, title: Hello}", "{type: task, title: Hello, due_days: 99999}"),
     "bounded.yaml: steps.0.actions.0.due_days: Input should be less than or equal to 3650 "
     "(got 99999)"),
    (("{field: tier, op: eq, value: enterprise}",
      "{field: renewal_date, op: within_next_days, value: 100000}"),
     "bounded.yaml: entry: operator 'within_next_days' takes at most 3650 days (10 years); "
     "got 100000"),
    (("{field: tier, op: eq, value: enterprise}", "{field: arr, op: gt, value: 1.0e+300}"),
     "bounded.yaml: entry: 1e+300 is out of range: numbers in conditions lie within ±1e+15"),
    (("{field: tier, op: eq, value: enterprise}", "{field: arr, op: lt, value: .inf}"),
     "bounded.yaml: entry: inf is out of range: numbers in conditions lie within ±1e+15"),
    (("{field: tier, op: eq, value: enterprise}", "{field: arr, op: in, value: [1, .nan]}"),
     "bounded.yaml: entry: a value must be a number, not .nan"),
    (("state: enabled", "state: enabled\npriority: 10000000"),
     "bounded.yaml: priority: Input should be less than or equal to 1000000 (got 10000000)"),
    (("{field: tier, op: eq, value: enterprise}", nested(51)),
     "bounded.yaml: entry: conditions nest at most 50 levels of all / any / not; this one "
     "nests 51"),
    (("{field: tier, op: eq, value: enterprise}", nested(150)),
     "bounded.yaml: entry: conditions nest at most 50 levels of all / any / not; this one "
     "nests 150"),
    (("{field: tier, op: eq, value: enterprise}", nested(250)),
     "bounded.yaml: entry.not.not: nests more than 200 levels deep: conditions nest at most "
     "50 levels of all / any / not; flatten the rule (one `any` of many leaves, not a chain "
     "of nested groups)"),
    (("{field: tier, op: eq, value: enterprise}", nested(5000)),
     "bounded.yaml: (top): nests too deep to read: conditions nest at most 50 levels of all / "
     "any / not; flatten the rule (one `any` of many leaves, not a chain of nested groups)"),
])
def test_a_spec_out_of_bounds_names_the_field(change: tuple[str, str], expected: str) -> None:
    assert change[0] in BASE
    assert problems(BASE.replace(*change)) == [expected]


def test_fifty_levels_of_nesting_are_allowed() -> None:
    parse_spec(BASE.replace("{field: tier, op: eq, value: enterprise}", nested(50)),
               Path("bounded.yaml"))


@pytest.mark.parametrize(("change", "expected"), [
    (("state:", "stat:"), "bounded.yaml: stat: unknown key (not part of the spec language); "
                          "did you mean 'state'?"),
    (("value: enterprise}", "valeu: enterprise}"),
     "bounded.yaml: entry.valeu: unknown key (not part of the spec language); did you mean "
     "'value'?"),
    (("{type: task, title: Hello}", "{type: task, titel: Hello}"),
     "bounded.yaml: steps.0.actions.0.titel: unknown key (not part of the spec language); "
     "did you mean 'title'?"),
    (("state: enabled", "state: enabeld"),
     "bounded.yaml: state: Input should be 'draft', 'enabled', 'paused' or 'disabled'; did "
     "you mean 'enabled'?"),
])
def test_unknown_keys_and_values_say_what_was_meant(change: tuple[str, str],
                                                    expected: str) -> None:
    assert expected in problems(BASE.replace(*change))


def test_an_unknown_operator_says_what_was_meant() -> None:
    [line] = problems(BASE.replace("op: eq", "op: eqq"))
    assert line.startswith("bounded.yaml: entry.op: Input should be 'eq', 'ne', ")
    assert line.endswith("'fell_by_pct' or 'rose_by_pct'; did you mean 'eq'?")


@pytest.mark.parametrize(("written", "meant"), [
    ("gte", "ge"), ("lte", "le"), ("not_equal", "ne"), ("'>='", "ge"), ("'<='", "le"),
    ("'!='", "ne"), ("neq", "ne"), ("equal", "eq"), ("'=='", "eq"), ("GT", "gt"),
    ("greater_than_or_equal", "ge"), ("is_not_null", "not_null"), ("gtee", "ge"),
    ("not_equl", "ne"), ("gtt", "gt"),
])
def test_an_operator_written_another_way_suggests_the_one_with_its_meaning(
        written: str, meant: str) -> None:
    # Spelling alone offered `gt` for `gte` and `not_null` for `not_equal`: a different rule.
    [line] = problems(BASE.replace("op: eq", f"op: {written}"))
    assert line.endswith(f"'fell_by_pct' or 'rose_by_pct'; did you mean '{meant}'?")


def test_an_operator_that_is_no_near_name_gets_no_suggestion() -> None:
    [line] = problems(BASE.replace("op: eq", "op: colour"))
    assert line.endswith("'fell_by_pct' or 'rose_by_pct'")


@pytest.mark.parametrize(("change", "expected"), [
    (("value: enterprise}", "value: enterprise"),
     "bounded.yaml: line 5: not valid YAML: while parsing a flow mapping (column 8): expected "
     "',' or '}', but got ':' on line 6 (column 6)"),
    (("title: Hello}", 'title: "Hello}'),
     "bounded.yaml: line 8: not valid YAML: while scanning a quoted scalar (column 35): found "
     "unexpected end of stream on line 9 (column 1)"),
])
def test_broken_yaml_is_named_at_the_line_where_it_breaks(change: tuple[str, str],
                                                          expected: str) -> None:
    # PyYAML notices an unclosed brace or quote lines later; the line named is where it opens.
    assert problems(BASE.replace(*change)) == [expected]


def test_files_that_are_no_specs_are_named(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (tmp_path / "folder.yaml").mkdir()
    errors = [str(e) for e in load_specs(tmp_path).errors]
    assert errors == [
        "folder.yaml: (top): is a folder, not a spec file: rename it (a folder in the specs "
        "folder must not end in .yaml or .yml) or move it elsewhere",
        "latin1.yaml: (top): not UTF-8 text: byte 0xe9 on line 1 — save the file as UTF-8",
    ]


def test_a_template_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    (tmp_path / "hi.html").write_bytes(b"<p>caf\xe9</p>")
    text = BASE.replace("{type: task, title: Hello}",
                        "{type: email, to: email, subject: Hi, template: hi.html}")
    with pytest.raises(SpecErrors) as caught:
        parse_spec(text, tmp_path / "bounded.yaml")
    assert [str(e) for e in caught.value.errors] == [
        "bounded.yaml: steps.0.actions.0.template: the template file is not UTF-8 text: byte "
        "0xe9 on line 1 — save the file as UTF-8"]


ENTERPRISE = [{"participant_id": "p1", "tier": "enterprise"}]


def test_a_failing_condition_names_the_workflow_and_the_condition() -> None:
    broken = spec(BASE.replace("name: bounded", "name: broken").replace(
        "state: enabled", "state: enabled\nexit: {any: [{field: tier, op: eq, value: x}, "
                          "{field: tier, op: gt, value: 5}]}"))
    with pytest.raises(EvaluationFailed) as caught:
        Run([spec(BASE), broken]).days([ENTERPRISE])
    assert str(caught.value) == ("workflow 'broken': evaluating exit failed: cannot compare "
                                 "string with numeric type (i32)")


def unbounded_delay(position: int, **length: int) -> Run:
    """A workflow whose delay at `position` got past the bounds (the spec is changed after
    validation): what the engine does when a length still overflows."""
    pause = "  - name: pause\n    delay: {days: 1}\n"
    steps = BASE.replace("steps:\n", "steps:\n" + pause) if position == 0 else \
        BASE + pause + "  - name: bye\n    actions: [{type: task, title: Bye}]\n"
    workflow = spec(steps)
    for unit, value in {"days": None, "months": None, **length}.items():
        object.__setattr__(workflow.spec.steps[position].delay, unit, value)
    return Run([workflow])


def test_a_delay_that_overflows_stops_the_tick_naming_the_step() -> None:
    with pytest.raises(EvaluationFailed) as caught:
        unbounded_delay(0, months=100_000_000).days([ENTERPRISE])
    assert str(caught.value) == (
        "workflow 'bounded': evaluating steps.0.delay failed: cannot advance '2026-06-01 "
        "00:00:00' by 100000000 months: date 8335359-10-01 is out of the supported range")
    run = unbounded_delay(1, days=100_000_000)
    with pytest.raises(EvaluationFailed) as caught:
        run.days([ENTERPRISE])
    assert str(caught.value) == ("workflow 'bounded': evaluating steps.1.delay failed: it "
                                 "would end after the year 9999")
    assert run.results == []  # the tick returned nothing to store


def test_a_panic_in_polars_becomes_an_evaluation_failure() -> None:
    panic = panic_class()
    with pytest.raises(EvaluationFailed) as caught, evaluating("the tick", workflow="w"), \
            evaluating("steps.3.delay"):
        raise panic("`NaiveDateTime + TimeDelta` overflowed")
    assert str(caught.value) == ("workflow 'w': evaluating steps.3.delay failed: "
                                 "`NaiveDateTime + TimeDelta` overflowed (a panic in Polars)")
    assert isinstance(caught.value.__cause__, panic)
    with pytest.raises(KeyboardInterrupt), evaluating("the tick", workflow="w"):
        raise KeyboardInterrupt


# -- scenario 21: spec injection and loader fuzzing ---------------------------------------------

INJECTIONS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
    "!!python/object:pathlib.Path {{}}",
    "&a [*a, *a]",
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_yaml_tags_that_would_run_code_are_refused_as_spec_errors(tmp_path: Path,
                                                                  value: str) -> None:
    marker = tmp_path / "pwned"
    for where in ("value: enterprise", "title: Hello"):
        text = BASE.replace(where, where.split(":")[0] + ": " + value.format(marker=marker))
        with pytest.raises(SpecErrors) as caught:
            parse_spec(text, Path("bounded.yaml"))
        assert all(str(e).startswith("bounded.yaml: ") for e in caught.value.errors)
    assert not marker.exists()


@pytest.mark.parametrize("template", [
    "{{{{ ''.__class__.__mro__[1].__subclasses__() }}}}",
    "{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}",
    "{{{{ self._TemplateReference__context }}}}",
    "{{% import os %}}{{{{ os.system('touch {marker}') }}}}",
])
def test_a_hostile_template_in_a_spec_never_runs_code(tmp_path: Path, template: str) -> None:
    """Refused when the spec loads, or loaded and failing closed for the participant at the
    tick (the action `render_failed`, nothing sent); never executed."""
    marker = tmp_path / "pwned"
    text = BASE.replace("title: Hello", f'title: "{template.format(marker=marker)}"')
    try:
        workflow = spec(text)
    except SpecErrors as refused:
        assert all(str(e).startswith("bounded.yaml: ") for e in refused.errors)
    else:
        run = Run([workflow])
        run.tick(START, [{"participant_id": "A", "tier": "enterprise"}])
        actions = run.actions()
        assert actions["status"].to_list() == ["render_failed"]
        assert actions["subject"].to_list() == [None]
    assert not marker.exists()


_TOKENS = st.sampled_from([
    "name: ", "bounded", "owner: ", "{user: cs@example.com}", "state: ", "enabled", "entry: ",
    "{field: tier, op: eq, value: x}", "steps:", "\n  - ", "name: hello", "actions: ",
    "[{type: task, title: Hello}]", "{", "}", "[", "]", ":", ",", "- ", "\n", "  ", "\t", "'",
    '"', "&a ", "*a", "<<: ", "---\n", "...\n", "%YAML 1.1\n", "!!python/object:os.system ",
    "!!binary ", "!!float ", "!!int ", "? ", "|", ">", "#", "null", "~", "1e999", "-1",
    "99999999999999999999", "{{ x }}", "{% for %}", "\x00", "\ufeff", "é", "\u2028",
    "op: between", "value: [1]", "delay: {days: -5}", "reentry: {mode: multiple}",
])
yaml_ish = st.one_of(
    st.lists(_TOKENS, max_size=40).map("".join),
    st.text(max_size=200),
    st.builds(lambda at, junk: BASE[:at] + junk + BASE[at:],
              st.integers(0, len(BASE)), st.text(max_size=20)),
    st.builds(lambda at, n: BASE[:at] + BASE[at + n:],
              st.integers(0, len(BASE)), st.integers(1, 30)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_ish)
def test_the_loader_never_raises_anything_but_its_own_errors(text: str) -> None:
    try:
        parse_spec(text, Path("fuzzed.yaml"))
    except SpecErrors as refused:
        assert refused.errors
        assert all(str(e).startswith("fuzzed.yaml: ") for e in refused.errors)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=300), yaml_ish.map(str.encode)))
def test_loading_a_folder_of_fuzzed_files_reports_errors_never_raises(
        tmp_path: Path, content: bytes) -> None:
    (tmp_path / "fuzzed.yaml").write_bytes(content)
    loaded = load_specs(tmp_path)
    assert all(str(e).startswith("fuzzed.yaml: ") for e in loaded.errors)
    assert len(loaded.errors) + len(loaded.workflows) >= 1
