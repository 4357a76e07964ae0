"""scripts/make_corpus.py: the same seed gives the same corpus; the shapes are what they say."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from catalog.loader import load as load_folders
from catalog.loader import load_text

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_corpus.py"


@pytest.fixture
def make_corpus(monkeypatch):
    spec = importlib.util.spec_from_file_location("make_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # a small version of the keyword shape: 20 rules of 100-450 values, one of 2,000 hashes
    monkeypatch.setattr(module, "KEYWORD_RULES", 20)
    monkeypatch.setattr(module, "GIANT_RULES", 1)
    monkeypatch.setattr(module, "GIANT_VALUES", 2_000)
    monkeypatch.setattr(module, "SHARED_POOL", 500)
    return module


def digest(folder: Path) -> str:
    hashed = hashlib.sha256()
    for path in sorted(folder.rglob("*.yml")):
        hashed.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return hashed.hexdigest()


def test_keyword_shape_is_deterministic_per_seed(make_corpus, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert make_corpus.main([str(tmp_path / name), "--shape", "keywords", "--seed", str(seed), "--scale", "2"]) == 0
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    result = load_folders([tmp_path / "a"])
    assert len(result.documents) == 42 and not [problem for problem in result.problems if problem.severity.value == "error"]
    sizes = sorted(len(document.detection.identifiers["keywords"].alternatives[0][0].values) for document in result.documents)
    assert sizes[-2:] == [2_000, 2_000] and 100 <= sizes[0] and sizes[-3] <= 451


RULE = """\
title: Tool started
id: 5b0c2d4e-1f3a-4c6b-8d9e-0a1b2c3d4e5f
related:
    - id: 6c1d3e5f-2a4b-4d7c-9e0f-1b2c3d4e5f60
      type: derived
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        EventID: 1
        Image|endswith:
            - '\\\\tool.exe'
            - '\\\\other.exe'
            - 'ab'
        CommandLine|contains: ' -secret'
    condition: selection
level: high
"""


def test_sigmahq_copies_get_new_ids_titles_and_some_values(make_corpus, tmp_path):
    source = tmp_path / "source" / "rules"
    source.mkdir(parents=True)
    (source / "tool.yml").write_text(RULE, encoding="utf-8")
    (source / "README.md").write_text("not a rule", encoding="utf-8")
    assert make_corpus.main([str(tmp_path / "out"), "--shape", "sigmahq", "--scale", "3", "--source", str(tmp_path / "source")]) == 0
    copies = [(tmp_path / "out" / f"copy-{number}" / "rules" / "tool.yml").read_text(encoding="utf-8") for number in range(3)]
    assert copies[0] == RULE
    ids = set()
    for number, text in enumerate(copies):
        [document], problems = load_text(text, "rules", "tool.yml")
        assert problems == []
        ids.add(document.id)
        if number:
            assert document.title == f"Tool started (copy {number})"
            assert document.related[0].id not in RULE
    assert len(ids) == 3
    assert not (tmp_path / "out" / "copy-0" / "rules" / "README.md").exists()


def test_sigmahq_copies_of_their_own_change_every_value_the_same_way(make_corpus, tmp_path):
    source = tmp_path / "source" / "rules"
    source.mkdir(parents=True)
    (source / "tool.yml").write_text(RULE, encoding="utf-8")
    # a second rule sharing one value with the first (in another case): the copies must share it too
    (source / "other.yml").write_text(RULE.replace("5b0c2d4e", "7d0c2d4e").replace("' -secret'", "' -SECRET'"), encoding="utf-8")
    assert make_corpus.main([str(tmp_path / "out"), "--shape", "sigmahq", "--scale", "3", "--values", "own",
                             "--source", str(tmp_path / "source")]) == 0
    values = {}
    for number in range(3):
        for name in ("tool", "other"):
            [document], problems = load_text((tmp_path / "out" / f"copy-{number}" / "rules" / f"{name}.yml").read_text(encoding="utf-8"),
                                             "rules", f"{name}.yml")
            assert problems == []
            values[number, name] = [value for item in document.detection.identifiers["selection"].alternatives[0] for value in item.values]
    assert values[0, "tool"][-1] == " -secret"
    for number in (1, 2):
        assert not set(values[number, "tool"]) & set(values[0, "tool"])  # every value changed (numbers and short ones too)
        assert [str(value).lower() for value in values[number, "tool"]] == [str(value).lower() for value in values[number, "other"]]
    assert not set(values[1, "tool"]) & set(values[2, "tool"])
