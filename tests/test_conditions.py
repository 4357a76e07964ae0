"""Conditions: the grammar, its errors (with positions), stages and exclusions.

Every test loads its own small rule through `catalog.loader.load_text`, the way a rule file is read.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from catalog.analysis import analyse
from catalog.conditions import And, IdentifierRef, Not, Quantified, parse_condition, render
from catalog.loader import load_text
from catalog.model import Rule

REFERENCE = Path(__file__).resolve().parents[1] / "rules" / "windows" / "image_load" / "wmi-module-loaded-by-suspicious-process.yml"
PROBLEM_FORMAT = re.compile(r"^rules/x\.yml:(\d+):(\d+): (error|warning): .+ \[[a-z0-9-]+\]$")


def load(text: str):
    """The documents and problems of one rule file's text."""
    return load_text(textwrap.dedent(text).lstrip("\n"), "rules", "x.yml")


def load_rule(text: str) -> tuple[Rule, list]:
    documents, problems = load(text)
    assert len(documents) == 1, [str(problem) for problem in problems]
    assert isinstance(documents[0], Rule)
    return documents[0], problems


def only_error(text: str):
    documents, problems = load(text)
    assert documents == []
    errors = [problem for problem in problems if problem.severity.value == "error"]
    assert len(errors) == 1, [str(problem) for problem in problems]
    assert PROBLEM_FORMAT.match(str(errors[0])), str(errors[0])
    return errors[0]


def codes(problems) -> list[str]:
    return [problem.code for problem in problems]


def shape(node):
    """The tree without offsets, for comparisons."""
    if isinstance(node, IdentifierRef):
        return node.name
    if isinstance(node, Quantified):
        return (f"{node.quantifier} of {node.target}", node.identifiers)
    if isinstance(node, Not):
        return ("not", shape(node.operand))
    return ("and" if isinstance(node, And) else "or", *(shape(operand) for operand in node.operands))


# --- the grammar -------------------------------------------------------------------------------


def test_single_identifier():
    rule, problems = load_rule(
        """
        title: One identifier
        logsource: {product: windows}
        detection:
            selection:
                Image|endswith: '\\cmd.exe'
            condition: selection
        """
    )
    (condition,) = rule.detection.conditions
    assert condition.text == "selection"
    assert shape(condition.expression) == "selection"
    assert condition.aggregation is None
    assert problems == []


def test_and():
    rule, _ = load_rule(
        """
        title: And
        logsource: {product: windows}
        detection:
            sel_image:
                Image|endswith: '\\cmd.exe'
            sel_parent:
                ParentImage|endswith: '\\winword.exe'
            condition: sel_image and sel_parent
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("and", "sel_image", "sel_parent")


def test_or():
    rule, _ = load_rule(
        """
        title: Or
        logsource: {product: windows}
        detection:
            sel_cmd:
                Image|endswith: '\\cmd.exe'
            sel_ps:
                Image|endswith: '\\powershell.exe'
            sel_wsh:
                Image|endswith: '\\wscript.exe'
            condition: sel_cmd or sel_ps or sel_wsh
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("or", "sel_cmd", "sel_ps", "sel_wsh")


def test_not():
    rule, _ = load_rule(
        """
        title: Not
        logsource: {product: windows}
        detection:
            filter:
                User: SYSTEM
            condition: not filter
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("not", "filter")


def test_parentheses_override_precedence():
    rule, _ = load_rule(
        """
        title: Parentheses
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            c: {H: 3}
            condition: (a or b) and c
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("and", ("or", "a", "b"), "c")
    assert render(rule.detection.conditions[0].expression) == "(a or b) and c"


def test_nested_parentheses_and_not():
    rule, _ = load_rule(
        """
        title: Nested
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            c: {H: 3}
            condition: a and not ((b) or (c))
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("and", "a", ("not", ("or", "b", "c")))


def test_and_binds_tighter_than_or():
    rule, _ = load_rule(
        """
        title: Precedence
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            c: {H: 3}
            condition: a or b and c
        """
    )
    expression = rule.detection.conditions[0].expression
    assert shape(expression) == ("or", "a", ("and", "b", "c"))
    explicit = parse_condition("a or (b and c)", ["a", "b", "c"]).expression
    assert shape(expression) == shape(explicit)


def test_not_binds_tighter_than_and():
    rule, _ = load_rule(
        """
        title: Not precedence
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            condition: not a and b
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("and", ("not", "a"), "b")


def test_one_of_pattern():
    rule, _ = load_rule(
        """
        title: One of a pattern
        logsource: {product: windows}
        detection:
            selection_img: {Image|endswith: '\\rundll32.exe'}
            selection_cli: {CommandLine|contains: 'comsvcs'}
            filter: {User: SYSTEM}
            condition: 1 of selection_*
        """
    )
    expression = rule.detection.conditions[0].expression
    assert isinstance(expression, Quantified) and expression.is_any
    assert expression.target == "selection_*"
    assert expression.identifiers == ("selection_img", "selection_cli")


def test_all_of_pattern():
    rule, _ = load_rule(
        """
        title: All of a pattern
        logsource: {product: windows}
        detection:
            selection_img: {Image|endswith: '\\rundll32.exe'}
            selection_cli: {CommandLine|contains: 'comsvcs'}
            condition: all of selection_*
        """
    )
    expression = rule.detection.conditions[0].expression
    assert isinstance(expression, Quantified) and not expression.is_any
    assert expression.quantifier == "all"
    assert expression.identifiers == ("selection_img", "selection_cli")


def test_one_of_them():
    rule, _ = load_rule(
        """
        title: One of them
        logsource: {product: windows}
        detection:
            first: {F: 1}
            second: {G: 2}
            condition: 1 of them
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("1 of them", ("first", "second"))


def test_all_of_them():
    rule, _ = load_rule(
        """
        title: All of them
        logsource: {product: windows}
        detection:
            first: {F: 1}
            second: {G: 2}
            condition: all of them
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("all of them", ("first", "second"))


def test_them_leaves_out_underscore_identifiers():
    rule, problems = load_rule(
        """
        title: Them without helpers
        logsource: {product: windows}
        detection:
            first: {F: 1}
            _helper: {G: 2}
            second: {H: 3}
            condition: all of them
        """
    )
    assert rule.detection.conditions[0].expression.identifiers == ("first", "second")
    assert codes(problems) == ["unused-identifier"]  # `_helper` is defined, nothing refers to it


def test_patterns_leave_out_underscore_identifiers_too():
    text = """
        title: Patterns and helpers
        logsource: {product: windows}
        detection:
            sel_a: {F: 1}
            _sel_helper: {G: 2}
            sel_b: {H: 3}
            condition: CONDITION
        """
    rule, _ = load_rule(text.replace("CONDITION", "1 of *"))
    assert rule.detection.conditions[0].expression.identifiers == ("sel_a", "sel_b")
    rule, _ = load_rule(text.replace("CONDITION", "1 of *sel* and 1 of _*"))
    assert shape(rule.detection.conditions[0].expression) == ("and", ("1 of *sel*", ("sel_a", "sel_b")), ("1 of _*", ("_sel_helper",)))


def test_patterns_know_only_the_star():
    text = """
        title: Star only
        logsource: {product: windows}
        detection:
            sel1: {F: 1}
            sel2: {G: 2}
            condition: CONDITION
        """
    rule, _ = load_rule(text.replace("CONDITION", "all of sel*"))
    assert rule.detection.conditions[0].expression.identifiers == ("sel1", "sel2")
    rule, _ = load_rule(text.replace("CONDITION", "1 of sel2 or sel1"))
    assert shape(rule.detection.conditions[0].expression) == ("or", ("1 of sel2", ("sel2",)), "sel1")
    error = only_error(text.replace("CONDITION", "1 of sel?"))
    assert "'sel?' matches no search identifier" in error.message


def test_list_of_conditions_each_its_own_stage_zero():
    rule, _ = load_rule(
        """
        title: Two conditions
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            filter: {G: 2}
            condition:
                - selection
                - selection and not filter
        """
    )
    assert [condition.text for condition in rule.detection.conditions] == ["selection", "selection and not filter"]
    stages = analyse(rule.detection).stages
    assert [(stage.number, stage.title) for stage in stages] == [
        (0, "condition"),
        (1, "selection"),
        (0, "condition"),
        (1, "selection"),
        (2, "not filter"),
    ]
    assert [stage.text for stage in stages if stage.number == 0] == ["selection", "selection and not filter"]


def test_legacy_aggregation_kept_with_a_warning():
    rule, problems = load_rule(
        """
        title: Legacy count
        logsource: {product: windows, service: security}
        detection:
            selection: {EventID: 4625}
            timeframe: 5m
            condition: selection | count(TargetUserName) by IpAddress > 10
        """
    )
    (condition,) = rule.detection.conditions
    assert shape(condition.expression) == "selection"
    assert condition.aggregation == "count(TargetUserName) by IpAddress > 10"
    assert condition.text == "selection | count(TargetUserName) by IpAddress > 10"
    assert rule.detection.timeframe == "5m"
    (problem,) = problems
    assert problem.code == "legacy-aggregation" and problem.severity.value == "warning"
    assert str(problem).startswith("rules/x.yml:6:16: warning: legacy aggregation '| count(TargetUserName)")
    assert analyse(rule.detection).aggregations == ("count(TargetUserName) by IpAddress > 10",)


def test_legacy_near_aggregation_kept():
    rule, problems = load_rule(
        """
        title: Legacy near
        logsource: {product: windows}
        detection:
            first: {F: 1}
            second: {G: 2}
            timeframe: 30s
            condition: first | near second
        """
    )
    assert rule.detection.conditions[0].aggregation == "near second"
    assert "legacy-aggregation" in codes(problems)


def test_upper_case_operators_accepted_with_a_warning():
    rule, problems = load_rule(
        """
        title: Upper case
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            filter_a: {G: 2}
            filter_b: {H: 3}
            condition: selection AND NOT 1 OF filter_* Or ALL of THEM
        """
    )
    expression = rule.detection.conditions[0].expression
    assert shape(expression) == (
        "or",
        ("and", "selection", ("not", ("1 of filter_*", ("filter_a", "filter_b")))),
        ("all of them", ("selection", "filter_a", "filter_b")),
    )
    (problem,) = problems
    assert problem.code == "uppercase-operator" and problem.severity.value == "warning"
    assert "AND, NOT, OF, Or, ALL, THEM" in problem.message


def test_timeframe_is_not_an_identifier():
    rule, problems = load_rule(
        """
        title: Timeframe
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            timeframe: 1h
            condition: selection
        """
    )
    assert list(rule.detection.identifiers) == ["selection"]
    assert rule.detection.timeframe == "1h"
    assert problems == []
    error = only_error(
        """
        title: Timeframe in the condition
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            timeframe: 1h
            condition: selection and timeframe
        """
    )
    assert "'timeframe' is not a search identifier" in error.message


def test_identifier_named_like_an_operator_prefix():
    rule, _ = load_rule(
        """
        title: Prefixes
        logsource: {product: windows}
        detection:
            notepad: {Image|endswith: '\\notepad.exe'}
            order: {F: 1}
            android: {G: 2}
            condition: notepad and not order or android
        """
    )
    assert shape(rule.detection.conditions[0].expression) == ("or", ("and", "notepad", ("not", "order")), "android")


# --- errors, with the place they were found --------------------------------------------------


def test_undefined_identifier_points_at_it():
    error = only_error(
        """
        title: Undefined
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            condition: selection and not filter
        """
    )
    assert error.code == "condition"
    assert (error.line, error.column) == (5, 34)  # the `f` of `filter`
    assert str(error) == (
        "rules/x.yml:5:34: error: condition 'selection and not filter': "
        "'filter' is not a search identifier defined in detection [condition]"
    )


def test_unclosed_parenthesis():
    error = only_error(
        """
        title: Unclosed
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            condition: a and (b or a
        """
    )
    assert (error.line, error.column) == (6, 22)  # the `(` that is never closed
    assert "'(' is never closed" in error.message


def test_unopened_parenthesis():
    error = only_error(
        """
        title: Unopened
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            condition: a and b)
        """
    )
    assert (error.line, error.column) == (6, 23)
    assert "unexpected ')'" in error.message


def test_dangling_operator_at_the_end():
    error = only_error(
        """
        title: Dangling
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            condition: a and b or
        """
    )
    assert (error.line, error.column) == (6, 26)  # just after the last word
    assert "the condition ends where an identifier or '(' was expected" in error.message


def test_operator_where_an_identifier_belongs():
    error = only_error(
        """
        title: Doubled operator
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            condition: a and or b
        """
    )
    assert (error.line, error.column) == (6, 22)
    assert "'or' where an identifier was expected" in error.message


def test_missing_operator_between_identifiers():
    error = only_error(
        """
        title: Missing operator
        logsource: {product: windows}
        detection:
            a: {F: 1}
            b: {G: 2}
            condition: a b
        """
    )
    assert (error.line, error.column) == (6, 18)
    assert "unexpected 'b'" in error.message


def test_pattern_matching_nothing():
    error = only_error(
        """
        title: Empty pattern
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            condition: selection and not 1 of filter_*
        """
    )
    assert (error.line, error.column) == (5, 39)
    assert "'filter_*' matches no search identifier" in error.message


def test_quantifier_without_of():
    error = only_error(
        """
        title: No of
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            condition: all selection
        """
    )
    assert "'all' must be followed by 'of'" in error.message


def test_empty_condition():
    error = only_error(
        """
        title: Empty condition
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            condition: ''
        """
    )
    assert "the condition is empty" in error.message
    assert (error.line, error.column) == (5, 16)


def test_error_position_in_a_quoted_condition():
    error = only_error(
        """
        title: Quoted
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            condition: 'selection and nope'
        """
    )
    assert (error.line, error.column) == (5, 31)  # the quote itself is column 16


def test_error_position_in_a_multi_line_condition():
    error = only_error(
        """
        title: Folded
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            filter: {G: 2}
            condition:
                selection and
                not (filter or
                     nope)
        """
    )
    assert (error.line, error.column) == (9, 14)
    assert "\n" not in str(error)


def test_error_position_in_a_block_condition():
    error = only_error(
        """
        title: Block
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            condition: >
                selection and
                nope
        """
    )
    assert (error.line, error.column) == (7, 9)


def test_error_position_in_a_list_of_conditions():
    error = only_error(
        """
        title: List
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            condition:
                - selection
                - selection or nope
        """
    )
    assert (error.line, error.column) == (7, 24)


# --- stages ------------------------------------------------------------------------------------


def test_reference_rule_stages():
    documents, problems = load_text(REFERENCE.read_text(encoding="utf-8"), "rules", "windows/image_load/wmi.yml")
    assert problems == []
    stages = analyse(documents[0].detection).stages
    assert [(stage.number, stage.title, stage.negated) for stage in stages] == [
        (0, "condition", False),
        (1, "selection", False),
        (2, "not filter", True),
    ]
    assert stages[0].body == "selection and not filter"
    assert stages[1].body.startswith("selection:\n    EventID: 7\n    ImageLoaded|endswith:\n")
    assert "# image loaded" not in stages[1].body  # re-serialised: comments are gone
    assert stages[2].body == "filter:\n    Image|endswith:\n        - '\\wmiprvse.exe'\n        - '\\wmiapsrv.exe'\n        - '\\svchost.exe'\n"


def test_stages_follow_references_in_written_order():
    rule, _ = load_rule(
        """
        title: Stage order
        logsource: {product: windows}
        detection:
            sel_b: {G: 2}
            sel_a: {F: 1}
            filter_x: {H: 3}
            condition: sel_a and not (filter_x or sel_b)
        """
    )
    stages = analyse(rule.detection).stages
    assert [stage.title for stage in stages] == ["condition", "sel_a", "not filter_x", "not sel_b"]


def test_double_negation_is_positive():
    rule, _ = load_rule(
        """
        title: Double negation
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            condition: not not selection
        """
    )
    analysis = analyse(rule.detection)
    assert [stage.title for stage in analysis.stages] == ["condition", "selection"]
    assert analysis.exclusions == ()
    assert [indicator.value for indicator in analysis.indicators] == ["1"]


def test_stage_shows_all_fields():
    rule, _ = load_rule(
        """
        title: All
        logsource: {product: windows}
        detection:
            selection:
                CommandLine|contains|all: [' -enc ', ' -nop ']
            condition: selection
        """
    )
    (_, stage) = analyse(rule.detection).stages
    assert stage.match_all_fields == ("CommandLine",)


# --- exclusions --------------------------------------------------------------------------------


def test_reference_rule_exclusions_sorted():
    documents, _ = load_text(REFERENCE.read_text(encoding="utf-8"), "rules", "windows/image_load/wmi.yml")
    (exclusion,) = analyse(documents[0].detection).exclusions
    assert exclusion.identifiers == ("filter",)
    assert not exclusion.combined
    assert exclusion.scope == "filter"
    assert exclusion.rows == (
        ("Image", "ends_with", "\\svchost.exe"),
        ("Image", "ends_with", "\\wmiapsrv.exe"),
        ("Image", "ends_with", "\\wmiprvse.exe"),
    )
    assert exclusion.grouped == ()


FILTERS = """
    title: Filters
    logsource: {product: windows}
    detection:
        selection: {Image|endswith: '\\rundll32.exe'}
        filter_main_system: {User: SYSTEM}
        filter_optional_sccm: {ParentImage|endswith: ['\\ccmexec.exe', '\\CcmExec.exe']}
        filter_signed: {Signed: true, Signature: Microsoft}
        condition: CONDITION
"""


def exclusions(condition: str):
    rule, _ = load_rule(FILTERS.replace("CONDITION", condition))
    return analyse(rule.detection).exclusions


def test_not_one_of_gives_one_exclusion_per_identifier():
    found = exclusions("selection and not 1 of filter_*")
    assert [exclusion.identifiers for exclusion in found] == [("filter_main_system",), ("filter_optional_sccm",), ("filter_signed",)]
    assert not any(exclusion.combined for exclusion in found)


def test_not_or_is_split_by_de_morgan():
    found = exclusions("selection and not (filter_main_system or filter_optional_sccm)")
    assert [exclusion.identifiers for exclusion in found] == [("filter_main_system",), ("filter_optional_sccm",)]
    assert found[0].rows == (("User", "equals", "SYSTEM"),)
    # sorted without regard to case, ties in code point order
    assert found[1].rows == (("ParentImage", "ends_with", "\\CcmExec.exe"), ("ParentImage", "ends_with", "\\ccmexec.exe"))


def test_separate_not_conjuncts():
    found = exclusions("selection and not filter_main_system and not filter_optional_sccm")
    assert [exclusion.identifiers for exclusion in found] == [("filter_main_system",), ("filter_optional_sccm",)]


def test_not_all_of_is_one_combined_exclusion():
    found = exclusions("selection and not all of filter_*")
    (exclusion,) = found
    assert exclusion.combined
    assert exclusion.identifiers == ("filter_main_system", "filter_optional_sccm", "filter_signed")
    assert exclusion.rows == () and exclusion.grouped == ()  # never shown as independent rows
    assert exclusion.scope == "filter"  # mixed scopes


def test_not_and_is_one_combined_exclusion():
    (exclusion,) = exclusions("selection and not (filter_main_system and filter_signed)")
    assert exclusion.combined
    assert exclusion.identifiers == ("filter_main_system", "filter_signed")
    assert [search.identifier for search in exclusion.searches] == ["filter_main_system", "filter_signed"]


def test_multi_field_identifier_is_grouped():
    (exclusion,) = exclusions("selection and not filter_signed")
    assert not exclusion.combined
    assert exclusion.rows == ()
    (group,) = exclusion.grouped
    assert [(item.field, item.kind, item.values) for item in group] == [
        ("Signed", "equals", ("true",)),
        ("Signature", "equals", ("Microsoft",)),
    ]


def test_filter_scopes():
    found = exclusions("selection and not 1 of filter_*")
    assert [exclusion.scope for exclusion in found] == ["main", "optional", "filter"]


def test_negations_outside_the_top_level_and_are_not_exclusions():
    assert exclusions("selection or not filter_main_system") == ()
    assert exclusions("selection and (filter_signed or not filter_main_system)") == ()


def test_list_of_maps_gives_alternatives():
    rule, _ = load_rule(
        """
        title: Alternatives
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            filter:
                - Image|endswith: '\\a.exe'
                - Image|endswith: '\\b.exe'
                  User: SYSTEM
            condition: selection and not filter
        """
    )
    (exclusion,) = analyse(rule.detection).exclusions
    assert exclusion.rows == (("Image", "ends_with", "\\a.exe"),)
    (group,) = exclusion.grouped
    assert [item.field for item in group] == ["Image", "User"]


def test_all_modifier_in_a_filter_is_grouped():
    rule, _ = load_rule(
        """
        title: All in a filter
        logsource: {product: windows}
        detection:
            selection: {F: 1}
            filter:
                CommandLine|contains|all: ['-a', '-b']
            condition: selection and not filter
        """
    )
    (exclusion,) = analyse(rule.detection).exclusions
    assert exclusion.rows == ()
    ((item,),) = exclusion.grouped
    assert item.match_all and item.values == ("-a", "-b")


@pytest.mark.parametrize(
    "condition",
    ["selection and not filter", "selection and not filter and not filter", "selection and not 1 of filt*"],
)
def test_the_same_identifier_is_excluded_once(condition):
    rule, _ = load_rule(
        f"""
        title: Once
        logsource: {{product: windows}}
        detection:
            selection: {{F: 1}}
            filter: {{G: 2}}
            condition:
                - {condition}
                - selection and not filter
        """
    )
    assert [exclusion.identifiers for exclusion in analyse(rule.detection).exclusions] == [("filter",)]
