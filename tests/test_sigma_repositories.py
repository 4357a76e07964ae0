"""Reading any Sigma repository right: nested conditions, field references, numbers as written,
tolerant schema ("warn, don't drop"), Sigma 2.1/2.2 documents, other dialects, precise locations.

Every test loads its own small original rule, the way a rule file is read.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from catalog.analysis import analyse, exclusions_of
from catalog.conditions import ConditionError, conjuncts, parse_condition
from catalog.corpus import CorpusIndex
from catalog.loader import load_text
from catalog.model import HAYABUSA, SIGMA, CorrelationRule, FilterRule, Rule
from catalog.pipeline import build_catalog
from catalog.problems import Severity


def load(text: str):
    return load_text(textwrap.dedent(text).lstrip("\n"), "rules", "x.yml")


def load_one(text: str):
    documents, problems = load(text)
    assert len(documents) == 1, [str(problem) for problem in problems]
    return documents[0], problems


def excluded_names(rule: Rule) -> list[tuple[str, ...]]:
    return [exclusion.identifiers for exclusion in analyse(rule.detection).exclusions]


def rule_with(condition: str, extra: str = "") -> str:
    return f"""
        title: Nested conditions
        logsource: {{product: acme, category: widget_start}}
        detection:
            logsource_selection: {{Channel: Widgets}}
            sel: {{Name|endswith: '\\gizmo.bin'}}
            sel2: {{Mode: fast}}
            filter: {{Parent: '\\safe.bin'}}
            filter_a: {{User: operator}}
            filter_b: {{Host: build01}}
            filter_c: {{Path|startswith: 'C:\\Tools\\'}}
            condition: {condition}
        {extra}"""


def problems_of(text: str, code: str):
    _, problems = load(text)
    return [problem for problem in problems if problem.code == code]


# --- 1. exclusions survive parentheses around the top-level AND ------------------------------


@pytest.mark.parametrize(
    "condition, expected",
    [
        ("sel and (sel2 and not filter)", [("filter",)]),
        ("(sel and not filter_a) and not filter_b", [("filter_a",), ("filter_b",)]),
        ("logsource_selection and (sel and not 1 of filter_*)", [("filter_a",), ("filter_b",), ("filter_c",)]),
        ("logsource_selection AND ((sel AND NOT filter_a) AND NOT (filter_b OR filter_c))", [("filter_a",), ("filter_b",), ("filter_c",)]),
        ("((((sel and not filter))))", [("filter",)]),
        ("sel and not filter or sel2", []),  # an OR at the top: nothing is excluded from every match
        ("sel and (sel2 or not filter)", []),  # the `not` sits under an OR
    ],
)
def test_exclusions_of_nested_conjunctions(condition, expected):
    rule, _ = load_one(rule_with(condition))
    assert excluded_names(rule) == expected


def test_flattened_form_equals_the_written_flat_form():
    nested, _ = load_one(rule_with("logsource_selection and (sel and not filter_a and not (filter_b or filter_c))"))
    flat, _ = load_one(rule_with("logsource_selection and sel and not filter_a and not filter_b and not filter_c"))
    assert analyse(nested.detection).exclusions == analyse(flat.detection).exclusions


def test_all_of_members_are_conjuncts():
    names = ["sel", "sel2", "filter"]
    condition = parse_condition("all of sel* and (not filter)", names)
    assert [getattr(term, "name", None) for term in conjuncts(condition.expression)] == ["sel", "sel2", None]


def test_filter_document_exclusions_use_the_flattened_form():
    documents, problems = load(
        """
        title: Widget filter
        logsource: {product: acme, category: widget_start}
        filter:
            rules: [nested-widgets]
            noise: {User: backup}
            other: {User: svc}
            condition: (not noise) and (not other)
        """
    )
    (document,) = documents
    detection = document.detection
    found = [exclusion.identifiers for condition in detection.conditions for exclusion in exclusions_of(condition.expression, detection.identifiers)]
    assert found == [("noise",), ("other",)]


# --- 2. fieldref -------------------------------------------------------------------------------


FIELDREF_RULE = """
    title: Renamed binary
    logsource: {product: acme, category: widget_start}
    detection:
        sel:
            Image|endswith: '\\OriginalFileName'
        mismatch:
            Image|fieldref|endswith: OriginalFileName
        filter_same:
            Target|fieldref: Source
        condition: sel and mismatch and not filter_same
    """


def test_fieldref_is_a_field_reference_not_a_literal():
    rule, problems = load_one(FIELDREF_RULE)
    assert problems == []
    analysis = analyse(rule.detection)
    literal, reference = analysis.indicators
    assert (literal.value, literal.field_reference, literal.kind) == ("\\OriginalFileName", False, "ends_with")
    assert (reference.value, reference.field_reference, reference.kind) == ("OriginalFileName", True, "fieldref, ends_with")
    (exclusion,) = analysis.exclusions
    (item,) = exclusion.searches[0].alternatives[0]
    assert (item.values, item.field_reference, item.kind) == (("Source",), True, "fieldref")


def test_fieldref_never_counts_as_a_literal_value():
    rule, _ = load_one(FIELDREF_RULE)
    literal_rule, _ = load_one(FIELDREF_RULE.replace("Image|fieldref|endswith: OriginalFileName", "Image|endswith: OriginalFileName"))
    corpus = CorpusIndex()
    corpus.add("with-fieldref", analyse(rule.detection).indicators)
    corpus.add("with-literal", analyse(literal_rule.detection).indicators)
    literal_key = ("Image", "ends_with", "originalfilename")
    assert literal_key in {indicator.key for indicator in analyse(literal_rule.detection).indicators}
    reference = next(indicator for indicator in analyse(rule.detection).indicators if indicator.field_reference)
    assert reference.key != literal_key
    assert corpus.count(literal_key) == corpus.count(reference.key) == 1  # neither is counted for the other rule


# --- 3. numbers as written, counted by value ---------------------------------------------------

NUMBERS_RULE = """
    title: Ticket options
    logsource: {product: acme, service: tickets}
    detection:
        sel:
            TicketOptions: 0x50800000
            Encryption: [0x17, 23, 007, +5, 1_000, 2.50]
        condition: sel
    """


def test_numbers_keep_the_form_written():
    rule, _ = load_one(NUMBERS_RULE)
    analysis = analyse(rule.detection)
    assert [indicator.value for indicator in analysis.indicators] == ["0x50800000", "0x17", "007", "+5", "1_000", "2.50"]
    assert "0x50800000" in analysis.stages[1].body and "1350565888" not in analysis.stages[1].body


def test_numbers_are_counted_by_value():
    rule, _ = load_one(NUMBERS_RULE)
    keys = [indicator.key for indicator in analyse(rule.detection).indicators]
    assert ("Encryption", "equals", "23") in keys and ("TicketOptions", "equals", "1350565888") in keys
    assert ("Encryption", "equals", "1000") in keys and ("Encryption", "equals", "2.5") in keys
    # 0x17 and 23 are one indicator: the analysis keeps it once
    assert sum(key == ("Encryption", "equals", "23") for key in keys) == 1


# --- 4. spaces around values are kept ----------------------------------------------------------


def test_values_with_edge_spaces_are_kept_exactly():
    rule, _ = load_one(
        """
        title: Spaced flags
        logsource: {product: acme, category: widget_start}
        detection:
            sel:
                CommandLine|contains: [' -quiet ', '-quiet']
            filter:
                User: 'admin '
            condition: sel and not filter
        """
    )
    analysis = analyse(rule.detection)
    assert [(indicator.value, indicator.edge_spaces) for indicator in analysis.indicators] == [(" -quiet ", True), ("-quiet", False)]
    assert len({indicator.key for indicator in analysis.indicators}) == 2
    assert analysis.exclusions[0].rows == (("User", "equals", "admin "),)


# --- 6. condition errors point at the right place ----------------------------------------------


@pytest.mark.parametrize(
    "condition, offset, words",
    [
        ("sel and (sel2 > 7)", 14, "unexpected '>'"),
        ("sel and (sel2", 8, "'(' is never closed"),
        ("sel and (sel2))", 14, "unexpected ')' after a complete condition"),
        ("sel and", 7, "ends where an identifier"),
        ("(sel or) and sel2", 7, "')' where an identifier was expected"),
    ],
)
def test_condition_errors_point_at_the_culprit(condition, offset, words):
    with pytest.raises(ConditionError) as raised:
        parse_condition(condition, ["sel", "sel2"])
    assert raised.value.offset == offset and words in raised.value.message


def test_condition_error_location_in_the_file():
    _, problems = load(rule_with("sel and (sel2 > 7)"))
    (problem,) = [problem for problem in problems if problem.code == "condition"]
    assert (problem.line, problem.column) == (11, 30) and "unexpected '>'" in problem.message


# --- 7. locations of ATT&CK findings and duplicate ids -----------------------------------------


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def small_rule(rule_id: str, title: str, tags: str = "[attack.execution]") -> str:
    return f"""
        title: {title}
        id: {rule_id}
        logsource: {{product: acme}}
        tags: {tags}
        detection:
            sel: {{Name: gizmo}}
            condition: sel
        """


def test_attack_findings_at_the_tag(tmp_path):
    from catalog.attack import load_knowledge

    write(tmp_path / "rules", "a.yml", """
        title: Tagged
        logsource: {product: acme}
        tags:
            - attack.execution
            -   attack.t9999
        detection:
            sel: {Name: gizmo}
            condition: sel
        """)
    catalog = build_catalog([tmp_path / "rules"], load_knowledge())
    (problem,) = [problem for problem in catalog.problems if problem.code == "attack-unknown-technique"]
    assert (problem.line, problem.column) == (5, 9)


def test_duplicate_id_reported_in_both_files_at_the_id_line(tmp_path):
    rules = tmp_path / "rules"
    shared = "6a1d0c1e-2222-4d2b-9a55-000000000002"
    write(rules, "one/first.yml", small_rule(shared, "First"))
    write(rules, "two/second.yml", small_rule(shared, "Second"))
    catalog = build_catalog([str(rules)])
    found = sorted((problem.path, problem.line, problem.column, problem.message) for problem in catalog.problems if problem.code == "duplicate-id")
    assert [(path.rsplit("/", 2)[-2:], line, column) for path, line, column, _ in found] == [(["one", "first.yml"], 2, 5), (["two", "second.yml"], 2, 5)]
    assert "'Second' (two/second.yml)" in found[0][3] and "'First' (one/first.yml)" in found[1][3]
    assert all(str(tmp_path) not in message for *_, message in found)
    assert len(catalog.entries) == 2


# --- 8. warn, don't drop -----------------------------------------------------------------------


def test_logsource_list_is_kept_with_a_warning():
    rule, problems = load_one(
        """
        title: Two sources
        logsource:
            product: acme
            category: [widget_start, script_run]
        detection:
            sel: {Name: gizmo}
            condition: sel
        """
    )
    (problem,) = problems
    assert (problem.code, problem.severity, problem.line) == ("logsource-list", Severity.WARNING, 4)
    assert rule.logsource.category == "widget_start, script_run"
    assert [(source.product, source.category) for source in rule.logsource.each] == [("acme", "widget_start"), ("acme", "script_run")]


def test_custom_key_named_like_a_sigma2_section():
    rule, problems = load_one(
        """
        title: Annotated
        correlation: "seen together with the gizmo rule"
        logsource: {product: acme}
        detection:
            sel: {Name: gizmo}
            condition: sel
        """
    )
    assert isinstance(rule, Rule)
    (problem,) = problems
    assert (problem.code, problem.severity, problem.line) == ("section-name-key", Severity.WARNING, 2)


def test_custom_map_named_like_a_sigma2_section():
    """A map without the section's defining key (a filter's `rules`) next to `detection:` is a custom key too."""
    rule, problems = load_one(
        """
        title: Annotated with a map
        filter: {reviewed_by: Ann}
        logsource: {product: acme}
        detection:
            sel: {Name: gizmo}
            condition: sel
        """
    )
    assert isinstance(rule, Rule) and [problem.code for problem in problems] == ["section-name-key"]


def test_yaml_that_is_not_a_rule_is_one_notice():
    documents, problems = load(
        """
        name: lint
        on: [push]
        jobs:
            check: {runs-on: ubuntu-latest}
        """
    )
    assert documents == []
    (problem,) = problems
    assert (problem.code, problem.severity, problem.line) == ("not-a-rule", Severity.INFO, 1)
    assert "title" in problem.message


def test_unparseable_yaml_is_still_a_located_problem():
    documents, problems = load("title: Broken\ndetection:\n  sel: {Name: [gizmo}\n")
    assert documents == []
    (problem,) = problems
    assert problem.code == "yaml" and problem.severity is Severity.ERROR and problem.line == 3


# --- 9. Sigma 2.1 / 2.2 ------------------------------------------------------------------------


def test_single_values_where_lists_are_expected():
    correlation, problems = load_one(
        """
        title: Gizmo burst
        author: [Ann, Bob]
        related: {id: 6a1d0c1e-9999-4d2b-9a55-000000000009, type: derived}
        falsepositives: Load tests
        correlation:
            type: event_count
            rules: gizmo
            group-by: Host
            timespan: 1m
            condition: {gte: 10}
        """
    )
    assert problems == []
    assert correlation.author == "Ann, Bob" and correlation.falsepositives == ("Load tests",)
    assert [(related.id[-4:], related.type) for related in correlation.related] == [("0009", "derived")]
    assert (correlation.rules, correlation.group_by) == (("gizmo",), ("Host",))


@pytest.mark.parametrize("kind", ["value_sum", "value_avg", "value_percentile"])
def test_value_correlation_types(kind):
    percentile = "\n                percentile: 95" if kind == "value_percentile" else ""
    correlation, problems = load_one(
        f"""
        title: Large transfers
        tags: attack.exfiltration
        correlation:
            type: {kind}
            rules: widget-transfer
            group-by: SourceHost
            timespan: 1h
            generate: true
            aliases:
                host:
                    widget-transfer: SourceHost
            condition:
                field: BytesSent
                gte: 1000000{percentile}
        """
    )
    assert problems == [], [str(problem) for problem in problems]
    assert isinstance(correlation, CorrelationRule)
    assert (correlation.type, correlation.rules, correlation.group_by) == (kind, ("widget-transfer",), ("SourceHost",))
    assert correlation.condition.field == "BytesSent" and correlation.condition.operators == (("gte", 1000000),)
    assert correlation.condition.percentile == (95 if percentile else None)
    assert correlation.generate and correlation.aliases == {"host": {"widget-transfer": "SourceHost"}}


def test_value_correlation_without_field_is_warned():
    _, problems = load(
        """
        title: No field
        correlation:
            type: value_sum
            rules: [a]
            timespan: 5m
            condition: {gt: 3}
        """
    )
    assert [problem.code for problem in problems] == ["missing-field"]


def test_correlation_tags_are_mapped_to_attack(tmp_path):
    from catalog.attack import load_knowledge

    write(tmp_path / "rules", "c.yml", """
        title: Many gizmos
        tags: [attack.execution, attack.t1059]
        correlation:
            type: event_count
            rules: gizmo
            timespan: 10m
            condition: {gte: 5}
        """)
    catalog = build_catalog([tmp_path / "rules"], load_knowledge())
    (entry,) = catalog.entries
    assert [mapped.technique.id for mapped in entry.attack.techniques] == ["T1059"]


def test_filter_for_any_rule_of_a_log_source(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "a.yml", small_rule("6a1d0c1e-3333-4d2b-9a55-000000000003", "Acme rule"))
    write(rules, "b.yml", small_rule("6a1d0c1e-4444-4d2b-9a55-000000000004", "Other product").replace("product: acme", "product: other"))
    write(rules, "f.yml", """
        title: Quiet the build host
        logsource: {product: acme}
        filter:
            rules: any
            build_host: {Host: build01}
            condition: not build_host
        """)
    catalog = build_catalog([str(rules)])
    by_title = {entry.document.title: entry for entry in catalog.entries}
    assert by_title["Quiet the build host"].document.any_rule
    assert [entry.document.title for entry in by_title["Quiet the build host"].targets] == ["Acme rule"]
    assert [exclusion.identifiers for exclusion in by_title["Acme rule"].filter_exclusions] == [("build_host",)]
    assert not any(problem.code == "unresolved-reference" for problem in catalog.problems)


@pytest.mark.parametrize("modifier, value", [("minute", 30), ("hour", 3), ("day", 1), ("week", 12), ("month", 2), ("year", 2026), ("neq", "idle")])
def test_time_part_modifiers_and_neq_are_accepted(modifier, value):
    rule, problems = load_one(
        f"""
        title: Odd hours
        logsource: {{product: acme}}
        detection:
            sel:
                EventTime|{modifier}: {value}
            condition: sel
        """
    )
    assert problems == []
    (indicator,) = analyse(rule.detection).indicators
    assert indicator.kind == f"equals, {modifier}" and indicator.value == str(value)


def test_regression_tests_path_and_simulation_are_kept():
    rule, problems = load_one(
        """
        title: Tested rule
        logsource: {product: acme}
        detection:
            sel: {Name: gizmo}
            condition: sel
        regression_tests_path: regression_data/acme/gizmo/info.yml
        simulation:
            - type: atomic-red-team
              name: Start the gizmo
              technique: T1059
              atomic_guid: 0e4b5a0c-5555-4d2b-9a55-000000000005
            - just text
        """
    )
    assert rule.regression_tests_path == "regression_data/acme/gizmo/info.yml"
    (simulation,) = rule.simulation
    assert (simulation.type, simulation.technique, simulation.atomic_guid) == ("atomic-red-team", "T1059", "0e4b5a0c-5555-4d2b-9a55-000000000005")
    assert [problem.code for problem in problems] == ["simulation"]


# --- 10. other dialects ------------------------------------------------------------------------

HAYABUSA_RULE = """
    author: Someone
    date: 2026/01/02
    title: Gizmo service installed
    details: 'Svc: %ServiceName%'
    description: a rule in Hayabusa's own format
    id: 6a1d0c1e-6666-4d2b-9a55-000000000006
    level: medium
    status: test
    logsource: {product: windows, service: system}
    detection:
        selection: {Channel: System, EventID: 7045}
        condition: selection
    ruletype: Hayabusa
    """


def test_hayabusa_dialect_is_recognised():
    rule, problems = load_one(HAYABUSA_RULE)
    assert rule.dialect == HAYABUSA and problems == []
    plain, _ = load_one(rule_with("sel"))
    assert plain.dialect == SIGMA
    unmarked, _ = load_one(HAYABUSA_RULE.replace("    ruletype: Hayabusa\n", ""))
    assert unmarked.dialect == HAYABUSA  # the `details:` key


def test_unknown_ruletype_is_a_notice():
    rule, problems = load_one(HAYABUSA_RULE.replace("ruletype: Hayabusa", "ruletype: Gizmo"))
    assert rule.dialect == SIGMA
    assert [(problem.code, problem.severity) for problem in problems] == [("unknown-ruletype", Severity.INFO)]


def test_pipeline_keeps_only_the_dialects_asked_for(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "h.yml", HAYABUSA_RULE)
    write(rules, "s.yml", small_rule("6a1d0c1e-7777-4d2b-9a55-000000000007", "Plain Sigma"))
    catalog = build_catalog([str(rules)], dialects={SIGMA})
    assert [entry.document.title for entry in catalog.entries] == ["Plain Sigma"]
    (problem,) = catalog.problems
    assert (problem.code, problem.severity) == ("dialect-excluded", Severity.INFO) and problem.path.endswith("h.yml")


# --- 11. output cut short ----------------------------------------------------------------------


def test_output_cut_short_exits_quietly(tmp_path):
    rules = tmp_path / "rules"
    for number in range(600):  # far more findings than a pipe buffers
        write(rules, f"r{number:03}.yml", small_rule(f"6a1d0c1e-8888-4d2b-9a55-{number:012}", f"Rule {number}") + "status: odd\nlevel: odd\n")
    command = f"{sys.executable} -m catalog.cli check --no-attack {rules} | head -1"
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr[-1000:]
    assert result.stdout.count("\n") == 1
