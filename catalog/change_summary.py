"""`catalog changes`: the Changes page of a preview build as a pull-request summary (Markdown or JSON).

It says what the Changes page says, from the same `ChangeSet` (`catalog.diff.compute_changes`):
the counts, then per rule the analysis diff in a few lines, each rule linked to its page in the
preview when a preview URL is given. Rules are untrusted: every text they provide is escaped, so a
title can add no link, HTML, emphasis, heading, mention or issue reference.

The Markdown is sized for where it goes (`--limit`, counted in UTF-8 bytes, never fewer than the
characters): past the limit whole rules are dropped from the end, and a last line says how many
and where to see them. The JSON (documented in docs/review.md) is the whole content, keyed by rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from catalog.changes import ChangeSet, ExclusionChange, IndicatorChange, RuleChange, TechniqueChange
from catalog.problems import Problem, Severity
from catalog.site.addresses import CHANGES, external_url, rule_path

#: GitHub's limit for a job summary (1 MiB); a pull-request comment takes 65,536 characters.
DEFAULT_LIMIT = 1024 * 1024
#: Below this a summary could not say what it leaves out.
MIN_LIMIT = 1000
#: Items of one list (indicators added, ...) shown per rule; the rest are counted.
LIST_ITEMS = 10
#: Characters of one text from a rule (a title, a value) before it is cut.
TEXT_CHARS = 200
SCHEMA_VERSION = 1

_HEADINGS = {"added": "Added", "modified": "Modified", "renamed": "Renamed or moved", "removed": "Removed"}
#: Line breaks, other control characters and bidirectional overrides: one line of plain text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
#: The ASCII punctuation that means something in GitHub's Markdown (links, HTML, emphasis, code, math,
#: tables, lists, headings, entities); CommonMark takes a backslash before any of them as the character itself.
_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&@:$])")
#: GitHub links @mentions, #123 references and bare URLs (https://, www.) in text; a zero-width space stops each.
_AUTOLINKED = re.compile(r"(\\[@#:]|(?i:www))")
_DOCUMENT_NUMBER = re.compile(r" \(document \d+\)$")


class SummaryError(ValueError):
    """An option of the summary is not usable (a preview URL that is not http(s)); one line for people."""


# --- escaping -------------------------------------------------------------------------------------


def plain(text: object, limit: int = TEXT_CHARS) -> str:
    """One line: control characters as spaces, whitespace runs as one, cut at `limit` characters."""
    line = " ".join(_CONTROL.sub(" ", str(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def md_text(text: object, limit: int = TEXT_CHARS) -> str:
    """Text from a rule as Markdown text that means only itself."""
    return _AUTOLINKED.sub("\\1\u200b", _PUNCTUATION.sub(r"\\\1", plain(text, limit)))


def md_code(text: object, limit: int = TEXT_CHARS) -> str:
    """Text from a rule as a code span (literal: no escapes, links or mentions inside)."""
    line = plain(text, limit)
    if not line:
        return "(empty)"
    fence = "`" * (max((len(run) for run in re.findall("`+", line)), default=0) + 1)
    pad = " " if line[0] == "`" or line[-1] == "`" else ""
    return f"{fence}{pad}{line}{pad}{fence}"


# --- what goes where ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preview:
    """Where the preview site is published (None: not published; links are left out), and where
    it can be downloaded (the CI run that has it as an artifact)."""

    url: str | None = None
    download: str | None = None

    @classmethod
    def at(cls, url: str | None, download: str | None = None) -> "Preview":
        site = _checked(url, "preview URL")
        return cls(site.rstrip("/") + "/" if site else None, _checked(download, "artifact URL"))

    def page(self, path: str) -> str | None:
        return self.url + path if self.url else None

    def rule_page(self, change: RuleChange) -> str | None:
        return self.page(rule_path(change.slug)) if change.has_page else None


def _checked(url: str | None, what: str) -> str | None:
    if not url:
        return None
    safe = external_url(url)
    if safe is None:
        raise SummaryError(f"the {what} must be an http:// or https:// address without spaces or quotes: {url!r}")
    return safe


def findings_by_rule(changes: ChangeSet) -> tuple[dict[int, list[Problem]], list[Problem]]:
    """The new findings under the first changed rule of their file (by index in `changes.changes`),
    and those of files without a changed rule (a file that gave no rule at all, ...)."""
    by_file: dict[str, list[Problem]] = {}
    for problem in changes.new_problems:
        by_file.setdefault(problem.path, []).append(problem)
    owned: dict[int, list[Problem]] = {}
    for index, change in enumerate(changes.changes):
        found = by_file.pop(_DOCUMENT_NUMBER.sub("", change.new_path), None) if change.new_path else None
        if found:
            owned[index] = found
    return owned, [problem for problems in by_file.values() for problem in problems]


def counts(changes: ChangeSet) -> dict[str, int]:
    errors = sum(problem.severity is Severity.ERROR for problem in changes.new_problems)
    return {
        **changes.counts(),
        "new_findings": len(changes.new_problems),
        "new_errors": errors,
        "new_warnings": sum(problem.severity is Severity.WARNING for problem in changes.new_problems),
        "likely_duplicates": len(changes.duplicates),
    }


# --- JSON -----------------------------------------------------------------------------------------


def summary_json(changes: ChangeSet, preview: Preview = Preview()) -> dict:
    """The whole summary as data: rules with a page keyed by their slug, removed rules by theirs."""
    owned, other = findings_by_rule(changes)
    rules: dict[str, dict] = {}
    removed: dict[str, dict] = {}
    for index, change in enumerate(changes.changes):
        record = {**change.to_json(), "page": preview.rule_page(change),
                  "new_findings": [problem.to_json() for problem in owned.get(index, [])]}
        (rules if change.has_page else removed)[change.slug] = record
    return {
        "schema_version": SCHEMA_VERSION,
        "base_ref": changes.base_ref,
        "base_commit": changes.base_commit,
        "merge_base": changes.merge_base,
        "counts": counts(changes),
        "changes_page": preview.page(CHANGES),
        "rules": rules,
        "removed": removed,
        "other_findings": [problem.to_json() for problem in other],
    }


# --- Markdown -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """A part of the summary that is shown whole or not at all."""

    text: str
    rules: int = 0
    findings: int = 0


def summary_markdown(changes: ChangeSet, preview: Preview = Preview(), limit: int = DEFAULT_LIMIT) -> str:
    """The summary as GitHub-flavoured Markdown of at most `limit` UTF-8 bytes."""
    owned, other = findings_by_rule(changes)
    blocks: list[Block] = []
    if other:
        blocks.append(Block(_other_findings(other), findings=len(other)))
    kind = None
    for index, change in enumerate(changes.changes):
        heading = ""
        if change.kind != kind:
            kind = change.kind
            heading = f"\n#### {_HEADINGS[kind]} ({len(changes.of_kind(kind))})\n\n"
        findings = owned.get(index, [])
        blocks.append(Block(heading + rule_block(change, findings, preview), rules=1, findings=len(findings)))
    return fit(_header(changes, preview), blocks, lambda left: _more_line(left, changes, preview), limit)


def fit(header: str, blocks: Sequence[Block], more: Callable[[Sequence[Block]], str], limit: int) -> str:
    """`header` and as many whole blocks as fit in `limit` bytes, then `more(the blocks left out)`."""
    parts, size = [header], _size(header)
    for index, block in enumerate(blocks):
        left = blocks[index + 1:]
        if size + _size(block.text) + (_size(more(left)) if left else 0) > limit:
            parts.append(more(blocks[index:]))
            break
        parts.append(block.text)
        size += _size(block.text)
    text = "".join(parts)
    if _size(text) > limit:  # only a header longer than the limit itself (MIN_LIMIT keeps that away)
        text = text.encode("utf-8")[:limit].decode("utf-8", "ignore")
    return text


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _header(changes: ChangeSet, preview: Preview) -> str:
    numbers = counts(changes)
    base = f"{md_code(changes.base_ref)} (commit {md_code(changes.short_commit)}{', the merge base' if changes.merge_base else ''})"
    kinds = ", ".join(f"**{numbers[kind]}** {label}" for kind, label in
                      (("added", "added"), ("modified", "modified"), ("renamed", "renamed or moved"), ("removed", "removed")))
    findings = (f"**{numbers['new_findings']}** new {_plural(numbers['new_findings'], 'finding')} "
                f"({numbers['new_errors']} {_plural(numbers['new_errors'], 'error')}, "
                f"{numbers['new_warnings']} {_plural(numbers['new_warnings'], 'warning')})")
    lines = ["### Sigma catalog: what this change does to the rules", "",
             f"Compared with {base}: {kinds}; {findings}; **{numbers['likely_duplicates']}** likely "
             f"{_plural(numbers['likely_duplicates'], 'duplicate')}. Comment-only and formatting-only edits are not listed; "
             "an indicator's count is how many rules of the catalog, this change included, have it."]
    if preview.url:
        lines += ["", f"Preview: [the Changes page](<{preview.page(CHANGES)}>)."]
    if not changes.changes and not changes.new_problems:
        lines += ["", "No rule changed."]
    return "\n".join(lines) + "\n"


def _more_line(left: Sequence[Block], changes: ChangeSet, preview: Preview) -> str:
    rules, findings = sum(block.rules for block in left), sum(block.findings for block in left)
    what = " and ".join(part for part in (f"{rules} more {_plural(rules, 'rule')}" if rules else "",
                                          f"{findings} more {_plural(findings, 'finding')}" if findings else "") if part)
    if preview.url:
        where = f"the [Changes page](<{preview.page(CHANGES)}>) of the preview"
    elif preview.download:
        where = f"the Changes page of the preview site, in the [artifacts of this run](<{preview.download}>)"
    else:
        where = (f"the Changes page of the preview build (`catalog build --base` {md_code(changes.base_ref)}; "
                 "in CI, the site artifact of this run)")
    return f"\n**… {what or 'more'} not shown here** (too long for this summary): see {where}.\n"


def _other_findings(problems: Sequence[Problem]) -> str:
    lines = [f"\n#### New errors and warnings in files without a changed rule ({len(problems)})\n"]
    lines += [f"- {_finding(problem, with_path=True)}" for problem in problems[: LIST_ITEMS * 5]]
    if len(problems) > LIST_ITEMS * 5:
        lines.append(f"- … and {len(problems) - LIST_ITEMS * 5} more")
    return "\n".join(lines) + "\n"


def _finding(problem: Problem, with_path: bool = False) -> str:
    where = problem.location if with_path else (f"line {problem.line}:{problem.column or 1}" if problem.line else "")
    return f"**{problem.severity.value}** {md_code(where) + ': ' if where else ''}{md_text(problem.message, 300)} ({md_code(problem.code)})"


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


# --- one rule -------------------------------------------------------------------------------------


def rule_block(change: RuleChange, findings: Sequence[Problem], preview: Preview) -> str:
    """The rule as a list item: title (linked to its preview page), where it is, then one line per difference."""
    title = md_text(change.title)
    page = preview.rule_page(change)
    name = f"[{title}](<{page}>)" if page else title
    if change.kind == "renamed":
        where = f"{md_code(change.old_path)} → {md_code(change.new_path)}"
    else:
        where = md_code(change.new_path or change.old_path or "")
    kind = f" ({md_text(change.document_kind)})" if change.document_kind != "rule" else ""
    lines = [f"- **{name}**{kind} {where}"]
    lines += [f"  - {line}" for line in _details(change, preview)]
    if findings:
        lines.append(f"  - new errors and warnings ({len(findings)}):")
        lines += [f"    - {_finding(problem)}" for problem in findings[:LIST_ITEMS]]
        if len(findings) > LIST_ITEMS:
            lines.append(f"    - … and {len(findings) - LIST_ITEMS} more")
    return "\n".join(lines) + "\n"


def _details(change: RuleChange, preview: Preview) -> Iterator[str]:
    facts = _facts(change)
    if facts:
        yield facts
    listed = (
        ("indicators added", change.indicators_added, _indicator),
        ("indicators removed", change.indicators_removed, _indicator),
        ("exclusions added", change.exclusions_added, _exclusion),
        ("exclusions removed", change.exclusions_removed, _exclusion),
        ("ATT&CK gained", change.techniques_gained, _technique),
        ("ATT&CK lost", change.techniques_lost, _technique),
    )
    for label, items, render in listed:
        if items:
            shown = ", ".join(render(item) for item in items[:LIST_ITEMS])
            more = f", and {len(items) - LIST_ITEMS} more" if len(items) > LIST_ITEMS else ""
            yield f"{label} ({len(items)}): {shown}{more}"
    duplicate = change.likely_duplicate_of
    if duplicate is not None:
        page = preview.page(rule_path(duplicate.slug))
        other = f"[{md_text(duplicate.title)}](<{page}>)" if page else md_text(duplicate.title)
        yield (f"⚠️ **likely duplicate**: shares {duplicate.shared} of its {duplicate.total} indicators "
               f"({round(100 * duplicate.ratio)}%) with {other} {md_code(duplicate.path)}"
               + (", also new in this change" if duplicate.is_new else ""))


def _facts(change: RuleChange) -> str:
    """Level, status and title changes, other metadata, logic: one line."""
    if change.kind in ("added", "removed"):
        level, status = (change.level_change or (None, None)), (change.status_change or (None, None))
        side = 1 if change.kind == "added" else 0
        parts = [f"{label} {md_code(value[side])}" for label, value in (("level", level), ("status", status)) if value[side]]
        return " · ".join(parts)
    parts = [f"{label} {md_code(old or 'none')} → {md_code(new or 'none')}"
             for label, pair in (("title", change.title_change), ("level", change.level_change), ("status", change.status_change))
             if pair for old, new in [pair]]
    if change.logic_changed and not (change.indicators_added or change.indicators_removed
                                     or change.exclusions_added or change.exclusions_removed):
        parts.append("detection logic changed")
    if change.metadata_changed:
        parts.append("also changed: " + ", ".join(md_text(name) for name in change.metadata_changed))
    return " · ".join(parts)


def _indicator(item: IndicatorChange) -> str:
    return f"{md_code(item.field)} {md_text(item.kind)} {md_code(item.value)} (in {item.rules} {_plural(item.rules, 'rule')})"


def _exclusion(item: ExclusionChange) -> str:
    label = (" and " if item.combined else ", ").join(item.identifiers)
    return f"not {md_code(label)} ({md_text(item.scope)}): {md_code(item.text)}"


def _technique(item: TechniqueChange) -> str:
    return f"{md_text(item.id)} {md_text(item.name)}"
