"""What one file may cost: recursive aliases, expansion limits per file, symbolic link loops, key
positions found without scans, time limits, and failures contained to the file (or document) they
happen in."""

from __future__ import annotations

import os
import signal
import time

import pytest

from catalog import loader, pipeline, timelimit
from catalog.conditions import pattern_matches
from catalog.loader import discover, load_text
from catalog.loader import load as load_folders
from catalog.pipeline import build_catalog
from catalog.problems import Code
from catalog.yamlsafe import MAX_EXPANDED_CHARACTERS, load_documents

HEAD = "title: Limits\nlogsource: {product: linux}\n"
BODY = "detection:\n  pick: {Image: tool}\n  condition: pick\n"


def problems_of(text: str):
    documents, problems = load_text(text, "rules", "x.yml")
    return documents, [(problem.code, problem.line, problem.column) for problem in problems]


# --- aliases ------------------------------------------------------------------------------------


def test_recursive_alias_in_a_list_is_placed_at_the_alias():
    documents, problems = problems_of(HEAD + "loop: &me [one, *me]\n" + BODY)
    assert documents == [] and problems == [(Code.RECURSIVE_ALIAS, 3, 17)]


def test_recursive_alias_through_a_merge_is_placed_at_the_alias():
    documents, problems = problems_of(HEAD + "loop: &me\n  name: x\n  <<: *me\n" + BODY)
    assert documents == [] and problems == [(Code.RECURSIVE_ALIAS, 5, 7)]


def test_recursive_alias_deeper_down():
    text = HEAD + "outer: &top\n  inner:\n    - a\n    - {again: *top}\n" + BODY
    assert problems_of(text)[1] == [(Code.RECURSIVE_ALIAS, 6, 15)]


def test_the_same_anchor_used_twice_side_by_side_is_not_recursive():
    text = HEAD + "detection:\n  pick:\n    Image: &tools [a.exe, b.exe]\n  other:\n    ParentImage: *tools\n    CommandLine: *tools\n  condition: pick and other\n"
    documents, problems = problems_of(text)
    assert len(documents) == 1 and problems == []


def test_characters_are_budgeted_per_file_with_aliases_expanded():
    big = "x" * 10_000
    aliases = ", ".join(["*a"] * (MAX_EXPANDED_CHARACTERS // 10_000 + 1))
    documents, problems = problems_of(HEAD + f"a: &a {big}\nmany: [{aliases}]\n" + BODY)
    assert documents == [] and [code for code, _, _ in problems] == [Code.EXPANDS_TOO_LARGE]


def test_values_are_budgeted_per_file_not_per_document():
    # each document expands to 400,000 values: fine alone, too many for one file three times over
    document = HEAD + "l: &l [" + ",".join(["v"] * 1000) + "]\nm: [" + ",".join(["*l"] * 400) + "]\n" + BODY
    assert problems_of(document)[1] == []
    documents, problems = problems_of("---\n".join([document] * 3))
    assert documents == [] and [code for code, _, _ in problems] == [Code.EXPANDS_TOO_LARGE]


def test_global_part_counts_once_per_document_it_is_copied_into():
    # each copy costs the part's characters and its text (shown with every rule): 4 M here
    global_part = "action: global\n" + HEAD + f"padding: {'p' * 2_000_000}\n"
    rule = "---\n" + BODY
    documents, problems = problems_of(global_part + rule * 7)
    assert len(documents) == 7 and problems == []
    documents, problems = problems_of(global_part + rule * 9)
    assert len(documents) == 7  # the eighth copy crosses the 32 Mi characters
    assert [code for code, _, _ in problems] == [Code.EXPANDS_TOO_LARGE]
    assert problems[0][1] == global_part.count("\n") + 7 * rule.count("\n") + 2  # the eighth document's first line


def test_a_comment_in_the_global_part_counts_too():
    global_part = "action: global\n" + HEAD + "# " + "c" * 6_000_000 + "\n"
    documents, problems = problems_of(global_part + ("---\n" + BODY) * 6)
    assert len(documents) == 5 and [code for code, _, _ in problems] == [Code.EXPANDS_TOO_LARGE]


def test_repeated_documents_count_what_they_repeat():
    first = HEAD + BODY + f"padding: {'r' * 4_000_000}\n"
    repeat = "---\naction: repeat\ntitle: Again\n"
    documents, problems = problems_of(first + repeat * 7)
    assert len(documents) == 8 and problems == []
    documents, problems = problems_of(first + repeat * 9)
    assert len(documents) == 8 and [code for code, _, _ in problems] == [Code.EXPANDS_TOO_LARGE]


def test_document_characters_count_aliases_expanded():
    [document] = load_documents("a: &a abcd\nb: [*a, *a]\n")
    assert document.characters == len("a" "abcd" "b" "abcd" "abcd")


# --- key positions ------------------------------------------------------------------------------


def test_merged_and_global_keys_keep_their_positions():
    text = "action: global\n" + HEAD + "custom: 1\n---\nshared: &base\n  first: 1\n  second: 2\nmerged:\n  <<: *base\n  own: 3\n" + BODY
    [document] = list(load_documents(text))[1:]
    merged = document.data["merged"]
    assert merged.key_position("second") == (8, 3) and merged.value_position("second") == (8, 11)
    assert merged.key_position("own") == (11, 3)
    documents, problems = problems_of(text)
    assert problems == [] and documents[0].title == "Limits"


def test_many_keys_merged_load_without_quadratic_scans():
    keys = "".join(f"  k{number}: v{number}\n" for number in range(20_000))
    text = HEAD + "anchor: &a\n" + keys + "merged:\n  <<: *a\n" + BODY
    [document] = load_documents(text)
    merged = document.data["merged"]
    assert len(merged) == 20_000 and merged.key_position("k19999") == (20_003, 3)


# --- symbolic links -----------------------------------------------------------------------------


def write_rule(path):
    path.write_text(HEAD + BODY, encoding="utf-8")


def test_symlink_loops_are_listed_and_the_rest_loads(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    write_rule(rules / "fine.yml")
    os.symlink("self.yml", rules / "self.yml")
    os.symlink("folder_loop", rules / "folder_loop")
    os.symlink("pong.yml", rules / "ping.yml")
    os.symlink("ping.yml", rules / "pong.yml")
    os.symlink(".", rules / "here")  # a link to a folder inside: not entered, not a problem
    result = load_folders([rules])
    assert [rule_file.relative for rule_file in result.files] == ["fine.yml"]
    assert len(result.documents) == 1
    assert sorted((problem.path, problem.code) for problem in result.problems) == [
        (f"{rules}/{name}", Code.SYMLINK_LOOP) for name in ("folder_loop", "ping.yml", "pong.yml", "self.yml")
    ]


def test_a_chain_of_links_that_ends_outside_is_refused(tmp_path):
    rules, outside = tmp_path / "rules", tmp_path / "outside"
    rules.mkdir()
    outside.mkdir()
    write_rule(outside / "secret.yml")
    os.symlink(outside / "secret.yml", rules / "hop.txt")  # not a rule name, but a step of the chain
    os.symlink("hop.txt", rules / "chain.yml")
    files, problems = discover([rules])
    assert files == [] and [(problem.path, problem.code) for problem in problems] == [(f"{rules}/chain.yml", "symlink-outside")]


def test_a_dangling_link_is_unreadable_not_a_crash(tmp_path):
    os.symlink("missing.yml", tmp_path / "gone.yml")
    result = load_folders([tmp_path])
    assert [problem.code for problem in result.problems] == ["unreadable"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_named_like_a_rule_is_refused_at_once(tmp_path):
    write_rule(tmp_path / "fine.yml")
    os.mkfifo(tmp_path / "pipe.yml")  # opened for reading the usual way, it waits for a writer forever
    result = load_folders([tmp_path])
    assert [document.source.path for document in result.documents] == ["fine.yml"]
    assert [(problem.code, problem.path.endswith("pipe.yml"), "not a regular file" in problem.message) for problem in result.problems] == [
        (Code.UNREADABLE, True, True)]


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 100)
    write_rule(tmp_path / "fine.yml")
    (tmp_path / "big.yml").write_text(HEAD + "description: " + "x" * 100 + "\n" + BODY, encoding="utf-8")
    result = load_folders([tmp_path])
    assert [document.source.path for document in result.documents] == ["fine.yml"]
    [problem] = result.problems
    assert problem.code == Code.FILE_TOO_LARGE and "more than the 100 a rule may have" in problem.message


# --- failures stay with their file --------------------------------------------------------------


def test_a_failure_reading_one_file_costs_that_file_only(tmp_path, monkeypatch):
    write_rule(tmp_path / "fine.yml")
    (tmp_path / "boom.yml").write_text(HEAD.replace("Limits", "Boom") + BODY, encoding="utf-8")
    real = loader.load_text

    def failing(text, root, relative):
        if relative == "boom.yml":
            raise MemoryError("pretend the file was too much")
        return real(text, root, relative)

    monkeypatch.setattr(loader, "load_text", failing)
    result = load_folders([tmp_path])
    assert [document.source.path for document in result.documents] == ["fine.yml"]
    [problem] = result.problems
    assert (problem.path, problem.code, problem.severity.value) == (f"{tmp_path}/boom.yml", Code.INTERNAL_ERROR, "error")
    assert "MemoryError: pretend the file was too much" in problem.message


def test_a_failure_analysing_one_document_costs_its_page_only(tmp_path, monkeypatch):
    write_rule(tmp_path / "fine.yml")
    (tmp_path / "boom.yml").write_text(HEAD + BODY + "---\n" + HEAD.replace("Limits", "Boom") + BODY.replace("tool", "bomb"), encoding="utf-8")
    real = pipeline.analyse

    def failing(detection):
        if "bomb" in str(detection.identifiers["pick"].definition):
            raise RecursionError("maximum recursion depth exceeded")
        return real(detection)

    monkeypatch.setattr(pipeline, "analyse", failing)
    catalog = build_catalog([tmp_path])
    assert sorted(entry.document.title for entry in catalog.entries) == ["Limits", "Limits"]
    [problem] = catalog.problems
    assert (problem.code, problem.line) == (Code.INTERNAL_ERROR, 7)
    assert problem.path.endswith("boom.yml") and "RecursionError" in problem.message


@pytest.mark.parametrize("text", ["x: &x [*x]\n", "x: &x {<<: *x}\n"])
def test_recursive_alias_does_not_stop_the_catalog(tmp_path, text):
    write_rule(tmp_path / "fine.yml")
    (tmp_path / "loop.yml").write_text(HEAD + text + BODY, encoding="utf-8")
    catalog = build_catalog([tmp_path])
    assert [entry.document.source.path for entry in catalog.entries] == ["fine.yml"]
    assert [(problem.code, problem.line) for problem in catalog.problems] == [(Code.RECURSIVE_ALIAS, 3)]


# --- time ---------------------------------------------------------------------------------------


def spin(*arguments):
    while True:
        pass


def test_a_file_that_takes_too_long_to_read_costs_that_file_only(tmp_path, monkeypatch):
    write_rule(tmp_path / "fine.yml")
    (tmp_path / "slow.yml").write_text(HEAD + BODY, encoding="utf-8")
    real = loader.load_text
    monkeypatch.setattr(timelimit, "FILE_SECONDS", 0.2)
    monkeypatch.setattr(loader, "load_text", lambda text, root, relative: spin() if relative == "slow.yml" else real(text, root, relative))
    result = load_folders([tmp_path])
    assert [document.source.path for document in result.documents] == ["fine.yml"]
    [problem] = result.problems
    assert problem.code == Code.INTERNAL_ERROR and "TimeLimitExceeded: took more than 0.2 s" in problem.message


def test_a_document_that_takes_too_long_to_analyse_costs_its_page_only(tmp_path, monkeypatch):
    write_rule(tmp_path / "fine.yml")
    (tmp_path / "slow.yml").write_text(HEAD + BODY.replace("tool", "slow"), encoding="utf-8")
    real = pipeline.analyse
    monkeypatch.setattr(timelimit, "FILE_SECONDS", 0.2)
    monkeypatch.setattr(pipeline, "analyse", lambda detection: spin() if "slow" in str(detection.identifiers["pick"].definition) else real(detection))
    catalog = build_catalog([tmp_path])
    assert [entry.document.source.path for entry in catalog.entries] == ["fine.yml"]
    assert [(problem.code, problem.path.endswith("slow.yml")) for problem in catalog.problems] == [(Code.INTERNAL_ERROR, True)]


def test_an_outer_timer_is_left_alone():
    signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        with timelimit.time_limit(0.01):
            time.sleep(0.05)  # no limit of our own while the outer timer runs
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 90
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@pytest.mark.parametrize("pattern,name,matches", [
    ("sel*", "selection", True), ("*tion", "selection", True), ("s*l*n", "selection", True),
    ("ab*b", "ab", False), ("a*a", "a", False), ("a*a", "aa", True), ("*", "", True), ("**", "x", True),
    ("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", "a" * 40, False),  # linear: a regular expression backtracks for minutes
])
def test_identifier_patterns_match_without_backtracking(pattern, name, matches):
    assert pattern_matches(pattern, name) is matches


def test_a_catalog_build_installs_the_alarm_handler_once_and_restores_it(tmp_path, monkeypatch):
    for number in range(3):
        write_rule(tmp_path / f"rule{number}.yml")
    installed = []
    real_signal = signal.signal
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.append(handler) or real_signal(signum, handler))
    before = signal.getsignal(signal.SIGALRM)
    catalog = build_catalog([tmp_path])
    assert len(catalog.entries) == 3
    assert installed == [timelimit._on_alarm, before]  # not twice per file and document
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_a_limit_outside_a_catalog_build_restores_the_handler_it_found():
    def mine(signum, frame):
        raise AssertionError("not ours")

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        with timelimit.time_limit(5):
            assert signal.getsignal(signal.SIGALRM) is timelimit._on_alarm and signal.getitimer(signal.ITIMER_REAL)[0] > 4
            with timelimit.time_limit(0.01):  # inside another limit: the outer one holds
                time.sleep(0.05)
        assert signal.getsignal(signal.SIGALRM) is mine and signal.getitimer(signal.ITIMER_REAL)[0] == 0
        with pytest.raises(timelimit.TimeLimitExceeded, match="took more than 0.05 s"):
            with timelimit.time_limit(0.05):
                time.sleep(1)
        assert signal.getsignal(signal.SIGALRM) is mine
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_inside_time_limits_a_timer_left_after_its_block_is_harmless():
    with timelimit.time_limits():
        with timelimit.time_limit(0.05):
            pass
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # left running: the next block sets it again
        time.sleep(0.15)  # it fires here, between blocks: ignored
        with pytest.raises(timelimit.TimeLimitExceeded, match="took more than 0.05 s"):
            with timelimit.time_limit(0.05):
                time.sleep(1)
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
