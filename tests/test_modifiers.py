"""Value modifiers: the indicator kind each gives, normalisation, corpus counts, bad chains.

Every test loads its own small rule through `catalog.loader.load_text`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from catalog.analysis import analyse
from catalog.loader import load_text
from catalog.model import Rule
from catalog.modifiers import has_wildcard, parse_modifiers
from catalog.pipeline import build_catalog


def load(text: str):
    return load_text(textwrap.dedent(text).lstrip("\n"), "rules", "x.yml")


def indicators_of(selection: str, expect_problems: bool = False) -> list[tuple]:
    """(field, kind, value, all) of each indicator of a rule whose only search is `selection`."""
    text = "title: t\nlogsource: {product: windows}\ndetection:\n    selection:\n" + textwrap.indent(textwrap.dedent(selection).strip("\n"), " " * 8) + "\n    condition: selection\n"
    documents, problems = load_text(text, "rules", "x.yml")
    assert len(documents) == 1 and isinstance(documents[0], Rule), [str(problem) for problem in problems]
    if not expect_problems:
        assert problems == [], [str(problem) for problem in problems]
    return [(i.field, i.kind, i.value, i.match_all) for i in analyse(documents[0].detection).indicators]


def kinds(selection: str) -> list[str]:
    return [kind for _, kind, _, _ in indicators_of(selection)]


# --- one modifier at a time --------------------------------------------------------------------


def test_no_modifier_is_equals():
    assert indicators_of("EventID: 7") == [("EventID", "equals", "7", False)]


def test_contains():
    assert indicators_of("CommandLine|contains: ' -enc '") == [("CommandLine", "contains", " -enc ", False)]


def test_startswith():
    assert indicators_of("Image|startswith: 'C:\\Users\\'") == [("Image", "starts_with", "C:\\Users\\", False)]


def test_endswith():
    assert indicators_of("Image|endswith: '\\mshta.exe'") == [("Image", "ends_with", "\\mshta.exe", False)]


def test_all_makes_each_value_its_own_indicator():
    assert indicators_of(
        """
        CommandLine|contains|all:
            - 'comsvcs'
            - 'MiniDump'
        """
    ) == [("CommandLine", "contains", "comsvcs", True), ("CommandLine", "contains", "MiniDump", True)]


def test_windash():
    assert kinds("CommandLine|windash|contains: ' -urlcache '") == ["contains, windash"]


def test_base64():
    assert kinds("CommandLine|base64: 'IEX'") == ["equals, base64"]


def test_base64offset_contains():
    assert indicators_of("CommandLine|base64offset|contains: 'IEX ('") == [("CommandLine", "contains, base64offset", "IEX (", False)]


@pytest.mark.parametrize("encoding", ["utf16le", "utf16be", "utf16", "wide"])
def test_utf16_encodings_before_base64offset(encoding):
    assert kinds(f"ScriptBlockText|{encoding}|base64offset|contains: 'Invoke-'") == [f"contains, {encoding}, base64offset"]


def test_regex():
    assert indicators_of("CommandLine|re: '\\s-e(nc)?\\s'") == [("CommandLine", "regex", "\\s-e(nc)?\\s", False)]


@pytest.mark.parametrize(
    ("modifiers", "kind"),
    [("re|i", "regex, i"), ("re|m", "regex, m"), ("re|s", "regex, s"), ("re|i|m|s", "regex, i, m, s"), ("re|ignorecase", "regex, i"), ("re|dotall", "regex, s"), ("re|multiline", "regex, m")],
)
def test_regex_flags(modifiers, kind):
    assert kinds(f"CommandLine|{modifiers}: 'a.b'") == [kind]


def test_cidr():
    assert indicators_of("DestinationIp|cidr: ['10.0.0.0/8', 'fe80::/10']") == [
        ("DestinationIp", "cidr", "10.0.0.0/8", False),
        ("DestinationIp", "cidr", "fe80::/10", False),
    ]


def test_exists():
    assert indicators_of("OriginalFileName|exists: false") == [("OriginalFileName", "exists", "false", False)]


def test_fieldref():
    assert indicators_of("TargetUserName|fieldref: SubjectUserName") == [("TargetUserName", "fieldref", "SubjectUserName", False)]


@pytest.mark.parametrize("comparison", ["gt", "gte", "lt", "lte"])
def test_numeric_comparisons(comparison):
    assert indicators_of(f"LogonType|{comparison}: 3") == [("LogonType", comparison, "3", False)]


def test_expand_keeps_placeholders():
    documents, problems = load(
        """
        title: Placeholder
        logsource: {product: windows}
        detection:
            selection:
                Image|expand: '%AdminTools%'
            condition: selection
        """
    )
    analysis = analyse(documents[0].detection)
    assert [(i.kind, i.value) for i in analysis.indicators] == [("equals, expand", "%AdminTools%")]
    assert analysis.placeholders == ("%AdminTools%",)


def test_cased():
    assert indicators_of("CommandLine|cased|contains: 'AmsiUtils'") == [("CommandLine", "contains, cased", "AmsiUtils", False)]


def test_keywords():
    documents, problems = load(
        """
        title: Keywords
        logsource: {product: linux}
        detection:
            keywords:
                - 'Accepted publickey'
                - 'session opened'
            condition: keywords
        """
    )
    analysis = analyse(documents[0].detection)
    assert [(i.field, i.field_label, i.kind, i.value) for i in analysis.indicators] == [
        (None, "(keyword)", "keyword", "Accepted publickey"),
        (None, "(keyword)", "keyword", "session opened"),
    ]


def test_keyword_with_modifiers_has_no_field():
    assert indicators_of("'|contains': 'mimikatz'") == [(None, "contains", "mimikatz", False)]


def test_null_value():
    assert indicators_of("CommandLine: null") == [("CommandLine", "null", "null", False)]


def test_numbers_and_booleans_as_written_in_text():
    assert indicators_of("Signed: false") == [("Signed", "equals", "false", False)]
    assert indicators_of("Size: 1.5") == [("Size", "equals", "1.5", False)]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("'*\\cmd.exe'", "wildcard"),
        ("'C:\\Windows\\*\\cmd.exe'", "equals"),  # Sigma reads `\*` as an escaped star, even in a path
        ("'cmd?.exe'", "wildcard"),
        ("'100\\%\\*'", "equals"),  # escaped: a literal star
        ("'what\\?'", "equals"),
        ("'C:\\\\*'", "wildcard"),  # an escaped backslash, then a real wildcard
        ("'plain'", "equals"),
    ],
)
def test_wildcards_only_when_unescaped(value, kind):
    assert kinds(f"Image: {value}") == [kind]


def test_has_wildcard():
    assert has_wildcard("a*") and has_wildcard("a?") and has_wildcard("\\\\*")
    assert not has_wildcard("a\\*") and not has_wildcard("a\\?") and not has_wildcard("")


def test_time_part_and_neq_qualify_the_kind():
    assert kinds("Timestamp|hour: 3") == ["equals, hour"]
    assert kinds("User|neq: SYSTEM") == ["equals, neq"]


# --- normalisation -----------------------------------------------------------------------------


def key_of(selection: str) -> tuple:
    documents, _ = load_text(f"title: t\nlogsource: {{product: windows}}\ndetection:\n    selection:\n        {selection}\n    condition: selection\n", "rules", "x.yml")
    (indicator,) = analyse(documents[0].detection).indicators
    return indicator.key


def test_strings_compare_without_case():
    assert key_of("Image|endswith: '\\WMIC.exe'") == key_of("Image|endswith: '\\wmic.exe'") == ("Image", "ends_with", "\\wmic.exe")


def test_regex_cased_and_fieldref_compare_exactly():
    assert key_of("Image|re: '\\\\WMIC\\.exe'") != key_of("Image|re: '\\\\wmic\\.exe'")
    assert key_of("Image|cased|endswith: '\\WMIC.exe'") != key_of("Image|cased|endswith: '\\wmic.exe'")
    assert key_of("TargetUserName|fieldref: SubjectUserName") == ("TargetUserName", "fieldref", "SubjectUserName")


def test_field_and_kind_are_part_of_the_key():
    assert key_of("Image|endswith: '\\wmic.exe'") != key_of("ParentImage|endswith: '\\wmic.exe'")
    assert key_of("Image|endswith: '\\wmic.exe'") != key_of("Image|contains: '\\wmic.exe'")


def test_negated_identifiers_give_no_indicators():
    documents, _ = load(
        """
        title: Filtered
        logsource: {product: windows}
        detection:
            selection: {Image|endswith: '\\rundll32.exe'}
            filter: {ParentImage|endswith: '\\svchost.exe'}
            condition: selection and not filter
        """
    )
    assert [i.value for i in analyse(documents[0].detection).indicators] == ["\\rundll32.exe"]


def test_an_indicator_is_listed_once_per_rule():
    documents, _ = load(
        """
        title: Twice
        logsource: {product: windows}
        detection:
            sel_a: {Image|endswith: '\\WMIC.exe'}
            sel_b: {Image|endswith: ['\\wmic.exe', '\\cmd.exe']}
            condition: 1 of sel_*
        """
    )
    analysis = analyse(documents[0].detection)
    assert [(i.value, i.identifier) for i in analysis.indicators] == [("\\WMIC.exe", "sel_a"), ("\\cmd.exe", "sel_b")]


# --- corpus counts -----------------------------------------------------------------------------

RULE = """title: {title}
id: {id}
logsource:
    category: process_creation
    product: windows
detection:
{detection}
falsepositives:
    - Unknown
level: medium
"""


def write_rule(folder: Path, name: str, number: int, detection: str) -> None:
    uuid = f"00000000-0000-4000-8000-{number:012d}"
    (folder / name).write_text(RULE.format(title=name, id=uuid, detection=textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ")), encoding="utf-8")


def test_corpus_counts_and_sharing(tmp_path):
    write_rule(
        tmp_path,
        "a.yml",
        1,
        """
        selection:
            Image|endswith: '\\WMIC.exe'
            CommandLine|contains: 'process call create'
        condition: selection
        """,
    )
    write_rule(
        tmp_path,
        "b.yml",
        2,
        """
        selection:
            Image|endswith: '\\wmic.exe'
            CommandLine|re: 'shadowcopy\\s+delete'
        condition: selection
        """,
    )
    write_rule(
        tmp_path,
        "c.yml",
        3,
        """
        selection:
            Image|endswith: ['\\wmic.exe', '\\WMIC.EXE']
            CommandLine|re: 'SHADOWCOPY\\s+delete'
        filter:
            CommandLine|contains: 'process call create'
        condition: selection and not filter
        """,
    )
    catalog = build_catalog([tmp_path])
    assert catalog.errors == []
    slugs = {entry.document.title: entry.slug for entry in catalog.entries}
    wmic = ("Image", "ends_with", "\\wmic.exe")
    assert catalog.corpus.count(wmic) == 3  # each rule counted once, whatever the case
    assert catalog.corpus.count(("CommandLine", "contains", "process call create")) == 1  # c only excludes it
    assert catalog.corpus.count(("CommandLine", "regex", "shadowcopy\\s+delete")) == 1  # regexes compare exactly
    assert catalog.corpus.count(("CommandLine", "regex", "SHADOWCOPY\\s+delete")) == 1
    assert catalog.corpus.count(("Image", "ends_with", "\\nothing.exe")) == 0
    shared = catalog.corpus.shared()
    assert shared == [(wmic, [slugs["a.yml"], slugs["b.yml"], slugs["c.yml"]])]


def test_corpus_counts_only_detection_rules(tmp_path):
    write_rule(tmp_path, "rule.yml", 1, "selection:\n    User: admin\ncondition: selection")
    (tmp_path / "filter.yml").write_text(
        "title: f\nlogsource: {product: windows}\nfilter:\n    rules: [00000000-0000-4000-8000-000000000001]\n"
        "    selection: {User: admin}\n    condition: not selection\n",
        encoding="utf-8",
    )
    catalog = build_catalog([tmp_path])
    assert catalog.corpus.count(("User", "equals", "admin")) == 1


# --- bad modifiers -----------------------------------------------------------------------------


def modifier_problems(key: str) -> list[str]:
    documents, problems = load_text(f"title: t\nlogsource: {{product: windows}}\ndetection:\n    selection:\n        {key}: 'x'\n    condition: selection\n", "rules", "x.yml")
    assert len(documents) == 1  # the rule still loads; the problem is listed
    for problem in problems:
        assert problem.code == "modifier" and problem.severity.value == "error"
        assert str(problem).startswith("rules/x.yml:5:9: error: 'selection', field ")
    return [problem.message for problem in problems]


def test_unknown_modifier_reported():
    (message,) = modifier_problems("Image|endwith")
    assert "unknown modifier 'endwith'" in message


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("Image|contains|endswith", "'endswith' cannot follow 'contains'"),
        ("Image|i", "regular-expression flag 'i' needs 're' before it"),
        ("Image|base64offset", "'base64offset' only makes sense followed by 'contains'"),
        ("Image|utf16le|contains", "'utf16le' must be followed by 'base64' or 'base64offset'"),
        ("Image|re|base64", "'base64' cannot follow 're'"),
        ("Image|cidr|contains", "'contains' cannot follow 'cidr'"),
        ("Image|exists|cased", "'exists' takes no other modifier"),
    ],
)
def test_impossible_chains_reported(key, expected):
    messages = modifier_problems(key)
    assert any(expected in message for message in messages), messages


@pytest.mark.parametrize(
    "key",
    ["Image|contains|all", "Image|base64offset|contains", "Image|wide|base64offset|contains", "Image|re|i|m|s", "Image|windash|contains", "Image|expand", "Image|cased|startswith", "Image|contains|cased"],
)
def test_good_chains_are_quiet(key):
    assert modifier_problems(key) == []


def test_parse_modifiers_chain():
    chain = parse_modifiers(("utf16le", "base64offset", "contains", "all"))
    assert chain.match == "contains"
    assert chain.qualifiers == ("utf16le", "base64offset")
    assert chain.match_all and chain.problems == ()
    assert chain.kind("x", keyword=False) == "contains, utf16le, base64offset"
    assert not chain.case_sensitive
    assert parse_modifiers(("re", "i")).case_sensitive
