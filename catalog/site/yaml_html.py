"""YAML as highlighted HTML: the rule body and the stages of a rule page.

Rule files are untrusted input: every character of the text is escaped here, and the result is
the only `Markup` made from rule text.
"""

from __future__ import annotations

import functools
import re

from markupsafe import Markup


# Quotes too, though element content does not need it: then no rule text can put the string
# `href="javascript:` into the HTML even as escaped text (hostile-input review, docs/review.md).
def _e(text: str) -> str:
    """Escape text for element content (the text, entities decoded, is the input unchanged).
    Replaced in turn, `&` first: str.translate with a table is five times slower."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#39;")


# A small line-based highlighter for the YAML that Sigma rules are written in. It never drops or
# changes a character: the text of its output (tags removed, entities decoded) is the input, byte
# for byte. It emits Pygments' class names (nt, s1, s2, s, m, kc, c1), which Material styles inside
# `.highlight`, and no per-line anchors or line numbers (they would double a rule page's size).

# Every pattern here is linear in the line: no pattern has two ways to match the same text, and
# the key of a line is found by searching for its colon once (a lazy key followed by `[ \t]*:`
# rescanned a run of spaces from every position: 52 s for a line of 200,000 spaces).
_PREFIX = re.compile(r"(?P<indent>[ \t]*)(?P<dash>(?:-[ \t]+)*)")
_QUOTED_KEY = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'""")
_PLAIN_KEY_START = re.compile(r"[^\s#'\"\-?:,\[\]{}&*!|>%@`]|-[^\s#]")
_KEY_COLON = re.compile(r":(?=[ \t]|$)")  # the colon that ends a plain key
_COLON = re.compile(r"[ \t]*:(?=[ \t]|$)")  # the colon after a quoted key
_SINGLE = re.compile(r"'(?:[^']|'')*'")
_DOUBLE = re.compile(r'"(?:[^"\\]|\\.)*"')
_BLOCK = re.compile(r"[|>][-+0-9]*(?=[ \t]|$)")
_PLAIN_COMMENT = re.compile(r"[ \t]#")
_NUMBER = re.compile(r"[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|0x[0-9a-fA-F]+|0o[0-7]+")
_CONSTANT = {"true", "false", "null", "~", "True", "False", "Null", "TRUE", "FALSE", "NULL"}


def _span(css: str, text: str) -> str:
    return f'<span class="{css}">{_e(text)}</span>' if text else ""


def _value(text: str, out: list[str]) -> bool:
    """Highlight what follows a key or a dash; True when it opens a block scalar."""
    stripped = text.lstrip(" \t")
    out.append(text[: len(text) - len(stripped)])
    if not stripped:
        return False
    if stripped[0] == "#":
        out.append(_span("c1", stripped))
        return False
    match = None
    if stripped[0] == "'":
        match = _SINGLE.match(stripped)
        css = "s1"
    elif stripped[0] == '"':
        match = _DOUBLE.match(stripped)
        css = "s2"
    if match is not None or stripped[0] in "'\"":
        end = match.end() if match is not None else len(stripped)  # unterminated: a multi-line string
        out.append(_span(css, stripped[:end]))
        _trailer(stripped[end:], out)
        return False
    block = _BLOCK.match(stripped)
    if block is not None:
        out.append(_e(block.group()))
        _trailer(stripped[block.end():], out)
        return True
    comment = _PLAIN_COMMENT.search(stripped)
    scalar, tail = (stripped[: comment.start()], stripped[comment.start():]) if comment else (stripped, "")
    if _NUMBER.fullmatch(scalar):
        out.append(_span("m", scalar))
    elif scalar in _CONSTANT:
        out.append(_span("kc", scalar))
    else:
        out.append(_e(scalar))
    _trailer(tail, out)
    return False


def _trailer(text: str, out: list[str]) -> None:
    """Whitespace and a comment after a value (anything else is kept as plain text)."""
    stripped = text.lstrip(" \t")
    out.append(text[: len(text) - len(stripped)])
    if stripped.startswith("#"):
        out.append(_span("c1", stripped))
    else:
        out.append(_e(stripped))


def _key(line: str, start: int) -> tuple[str, str] | None:
    """The key of a `key: value` line whose key starts at `start`: (key, the blanks and colon after it)."""
    quoted = _QUOTED_KEY.match(line, start)
    if quoted is not None:
        colon = _COLON.match(line, quoted.end())
        return (quoted.group(), colon.group()) if colon is not None else None
    first = _PLAIN_KEY_START.match(line, start)
    if first is None:
        return None
    colon = _KEY_COLON.search(line, first.end())
    if colon is None or "#" in line[start:colon.start()]:  # a comment starts before any colon
        return None
    text = line[start:colon.start()]
    key = text.rstrip(" \t")
    return key, text[len(key):] + ":"


#: Lines up to this length are memoised (rules share most of their lines); longer ones are not
#: kept (a cache of long unique lines would only hold memory).
_CACHED_LINE = 200


@functools.lru_cache(maxsize=1 << 14)
def _short_line(line: str) -> tuple[str, int | None]:
    return _highlight_line(line)


#: The common shapes of a line, highlighted in one match: `key: value`, `- value`, `key:` and a
#: value alone, where the value is a quoted string that ends the line or a plain scalar without a
#: `#`. No two pieces can take the same character (the blanks after a key are the key's, a value
#: starts with none), so a failed match backtracks in linear time: `" " * 200_000 + "#"` split
#: between two runs of blanks was quadratic. What it does not take goes through `_general_line`.
_SIMPLE_LINE = re.compile(
    r"(?P<lead>[ \t]*(?:-[ \t]+)*)"
    r"(?:(?P<key>[A-Za-z_][\w.|-]*):(?=[ \t]|\Z)(?P<gap>[ \t]*))?"
    r"(?:(?P<s1>'[^'\n]*')|(?P<s2>\"[^\"\\\n]*\")|(?P<plain>[^\s#'\"|>-][^#\n]*))?\Z"
)


def _highlight_line(line: str) -> tuple[str, int | None]:
    """One line that is not inside a block scalar: (its HTML, the indent of a block it opens).
    As `_general_line`, in one match for the common shapes (nine in ten of SigmaHQ's distinct lines)."""
    match = _SIMPLE_LINE.match(line)
    if match is None:
        return _general_line(line)
    lead, key, gap, single, double, plain = match.groups()
    if plain is not None:
        if key is None and ":" in plain:  # perhaps a key after all (`- a:b: c`): the general path decides
            return _general_line(line)
        value = _span("m", plain) if _NUMBER.fullmatch(plain) else _span("kc", plain) if plain in _CONSTANT else _e(plain)
    else:
        value = _span("s1", single) if single is not None else _span("s2", double) if double is not None else ""
    if key is None:
        return lead + value, None
    return f'{lead}<span class="nt">{key}</span>:{gap}{value}', None


def _general_line(line: str) -> tuple[str, int | None]:
    out: list[str] = []
    prefix = _PREFIX.match(line)
    assert prefix is not None  # both parts may be empty
    indent, dash = prefix.group("indent", "dash")
    found = _key(line, prefix.end())
    key, colon = found if found is not None else (None, "")
    rest = line[prefix.end() + len(key) + len(colon):] if key is not None else line[prefix.end():]
    out.append(indent)
    out.append(_e(dash))
    block = None
    if rest.startswith("#") and key is None:
        out.append(_span("c1", rest))
    elif key is not None:
        out.append(_span("nt", key))
        out.append(_e(colon))
        if _value(rest, out):
            block = len(indent) + len(dash)
    elif _value(rest, out) and dash:
        block = len(indent)
    return "".join(out), block


def highlight_yaml(text: str) -> Markup:
    """YAML as escaped HTML with Pygments class names; its text content is `text` unchanged.

    Rules share most of their lines (`level: high`, `    product: windows`), so lines are memoised.
    """
    out: list[str] = []
    block_indent: int | None = None  # inside a block scalar: the indentation of its key
    crlf = "\r" in text
    for line in text.split("\n"):
        ending = ""
        if crlf and line.endswith("\r"):
            line, ending = line[:-1], "\r"
        if block_indent is not None:
            body = line.lstrip(" \t")
            if not body or len(line) - len(body) > block_indent:
                out.append(_span("s", line) + ending)
                continue
        html, block_indent = _short_line(line) if len(line) <= _CACHED_LINE else _highlight_line(line)
        out.append(html + ending if ending else html)
    return Markup("\n".join(out))
