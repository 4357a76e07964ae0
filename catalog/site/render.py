"""Rendering: the Jinja2 environment, the YAML highlighter and the theme frame of our own pages.

Rule files are untrusted input. Every template is autoescaped; nothing from a rule is ever marked
safe in a template. The only `Markup` values that reach templates are built here from escaped
text: the highlighted YAML and the theme frame captured from the theme's own output.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import jinja2
import jinja2.compiler
from markupsafe import Markup, escape

from catalog.site.addresses import external_url, page_href, root_prefix

TEMPLATES = Path(__file__).parent / "templates"

# Quotes too, though element content does not need it: then no rule text can put the string
# `href="javascript:` into the HTML even as escaped text (hostile-input review, docs/review.md).
def _e(text: str) -> str:
    """Escape text for element content (the text, entities decoded, is the input unchanged).
    Replaced in turn, `&` first: str.translate with a table is five times slower."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#39;")


# --- YAML highlighting --------------------------------------------------------------------------
#
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


def _line(line: str) -> tuple[str, int | None]:
    """One line that is not inside a block scalar: (its HTML, the indent of a block it opens)."""
    return _short_line(line) if len(line) <= _CACHED_LINE else _highlight_line(line)


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
    """As `_general_line`, in one match for the common shapes (nine in ten of SigmaHQ's distinct lines)."""
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
    for piece in text.split("\n"):
        line, ending = (piece[:-1], "\r\n") if piece.endswith("\r") else (piece, "\n")
        if block_indent is not None:
            body = line.lstrip(" \t")
            if not body or len(line) - len(body) > block_indent:
                out.append(_span("s", line) + ending)
                continue
        html, block_indent = _line(line)
        out.append(html + ending)
    out[-1] = out[-1][:-1]  # the last piece has no newline after it
    return Markup("".join(out))


# --- JSON -----------------------------------------------------------------------------------------

def html_safe_json(data: object, indent: int | None = None) -> bytes:
    """JSON whose text holds no <, > or & (escaped as \\u003c...): rule text stays inert even where
    a JSON file is shown as HTML by mistake. The data reads back unchanged."""
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(data, ensure_ascii=False, indent=indent, separators=separators)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")


# --- the Jinja2 environment ---------------------------------------------------------------------


@jinja2.pass_context
def _url(context: jinja2.runtime.Context, target: str) -> str:
    """A link from the page being rendered to the site page `target` (relative, so sites move)."""
    href = context["root"] + page_href(target, context["directory_urls"])
    return href or "./"


@jinja2.pass_context
def _file_url(context: jinja2.runtime.Context, target: str) -> str:
    """A link to a file of the site (an export, an asset)."""
    return context["root"] + target


def _number(value: int) -> str:
    return f"{value:,}"


def _edges(text: str) -> tuple[str, str, str]:
    """(leading white space, the rest, trailing white space) of a value: pages mark the edges."""
    core = text.strip()
    if not core:
        return text, "", ""
    start = len(text) - len(text.lstrip())
    return text[:start], core, text[start + len(core):]


def _breakable(text: str) -> Markup:
    """A value, escaped, with a line-break opportunity (<wbr>) after each `\\`, `/` and `.`:
    long paths wrap at their separators on a phone instead of in the middle of a name."""
    return Markup(str(escape(text)).replace("\\", "\\<wbr>").replace("/", "/<wbr>").replace(".", ".<wbr>"))


try:  # markupsafe 3: its C escaping, without wrapping the result in a Markup object
    from markupsafe import _escape_inner as _escape_text
except ImportError:  # pragma: no cover - another markupsafe: same text, slower
    def _escape_text(text: str) -> str:
        return str(escape(text))


def escaped(value: object) -> str:
    """What a `{{ value }}` of a template writes: `markupsafe.escape(value)` as plain text.

    `escape` makes a Markup object of every value written, in Python: seven times the cost of the
    escaping itself, for a string that is only ever joined into the page."""
    if type(value) is str:
        return _escape_text(value)
    html = getattr(value, "__html__", None)
    if html is not None:
        return html()
    return _escape_text(str(value))


class _CodeGenerator(jinja2.compiler.CodeGenerator):
    """Compiles a template's autoescaped output to `escaped(...)`, not to `escape(...)`: the same
    text (the parts of a page, a macro's or a `set` block's output are joined, then marked safe)."""

    def visit_Template(self, node, frame=None) -> None:  # noqa: ANN001 - Jinja's signature
        self.writeline(f"from {__name__} import escaped")
        super().visit_Template(node, frame)

    def _output_child_pre(self, node, frame, finalize) -> None:  # noqa: ANN001 - Jinja's signature
        if frame.eval_ctx.autoescape and not frame.eval_ctx.volatile:
            self.write("escaped(")
            if finalize.src is not None:
                self.write(finalize.src)
        else:
            super()._output_child_pre(node, frame, finalize)


class _Environment(jinja2.Environment):
    """Template data is plain dicts: `row.title` looks up the key first (no AttributeError on the way)."""

    code_generator_class = _CodeGenerator

    def getattr(self, obj, attribute):
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def make_environment() -> jinja2.Environment:
    env = _Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    # filters, not functions: Jinja calls a template's function through its generic dispatch and
    # a filter directly (a rule page makes dozens of links)
    env.filters.update(url=_url, file_url=_file_url, external_url=external_url, yaml=highlight_yaml, number=_number, edges=_edges,
                       breakable=_breakable)
    return env


class Renderer:
    """Renders our templates into HTML fragments (the content of a page, without the frame)."""

    def __init__(self, directory_urls: bool = True) -> None:
        self.env = make_environment()
        self.directory_urls = directory_urls

    def render(self, template: str, path: str, context: dict) -> str:
        return self.env.get_template(template).render(
            context, root=root_prefix(path), directory_urls=self.directory_urls, page_path=path
        )


# --- the frame of our own pages -------------------------------------------------------------------

#: What the frame page carries where a page's own title, description and content go. The theme
#: escapes none of these characters, so the markers come out of it unchanged.
TITLE_MARKER = "SIGMACATALOGxTITLEx7f3a"
DESCRIPTION_MARKER = "SIGMACATALOGxDESCRIPTIONx7f3a"
#: Material adds an <h1> of the page title unless the content has one: the "<h1" in the comment
#: stops that (our content brings its own <h1>). The whole string is cut out of the frame.
CONTENT_MARKER = "<!-- <h1 -->SIGMACATALOGxCONTENTx7f3a"

_WHITESPACE_RUN = re.compile(r"[ \t]*\n[ \t\r\n]*")

#: The frame page has one heading of this text: the theme's table of contents of it is where a
#: rule page's own goes (`toc_html`). Its sidebar gets `hidden` on pages without one.
TOC_MARKER = "SIGMACATALOGxTOCx7f3a"
_TOC_HIDDEN = "SIGMACATALOGxTOCHIDDENx7f3a"
_TOC_ITEM = re.compile(r'<li class="md-nav__item">\s*<a href="#[^"]*" class="md-nav__link">\s*<span class="md-ellipsis">\s*'
                       + TOC_MARKER + r"\s*</span>\s*</a>\s*</li>")
_TOC_SIDEBAR = re.compile(r'(<div class="md-sidebar md-sidebar--secondary"[^>]*?)\s*>')
_HEADING = re.compile(r'<h([23]) id="([^"]+)"[^>]*>(.*?)</h\1>', re.S)
_TAG = re.compile(r"<[^>]+>")


def toc_html(content: str) -> str:
    """Material's table-of-contents items for the h2 (and, under them, h3) headings of our page
    content. The headings' text is already escaped by our templates; their ids are ours."""
    sections: list[tuple[str, str, list[tuple[str, str]]]] = []
    for level, anchor, inner in _HEADING.findall(content):
        title = _TAG.sub("", inner).strip()
        if level == "2":
            sections.append((anchor, title, []))
        elif sections:
            sections[-1][2].append((anchor, title))

    def item(anchor: str, title: str, children: list[tuple[str, str]]) -> str:
        nested = ""
        if children:
            nested = (f'<nav class="md-nav" aria-label="{title}"><ul class="md-nav__list">'
                      + "".join(item(a, t, []) for a, t in children) + "</ul></nav>")
        return f'<li class="md-nav__item"><a href="#{anchor}" class="md-nav__link"><span class="md-ellipsis">{title}</span></a>{nested}</li>'

    return "".join(item(*section) for section in sections)


def _toc_slots(head: str) -> str:
    """The frame's table of contents as markers: its one item (the frame's heading) where a page's
    items go, and a place for `hidden` on its sidebar. A theme without them: no table of contents."""
    if len(_TOC_ITEM.findall(head)) == 1 and len(_TOC_SIDEBAR.findall(head)) == 1:
        head = _TOC_ITEM.sub(TOC_MARKER, head)
        return _TOC_SIDEBAR.sub(lambda match: f"{match.group(1)} {_TOC_HIDDEN}>", head)
    return head.replace(TOC_MARKER, "")


def _collapse(html: str) -> str:
    """Runs of blank lines and indentation to one newline: the theme's indentation, same layout.

    Only safe for markup without <pre> or <textarea>, which the frame never has (checked); in
    <script> the newline still ends a statement where it did.
    """
    return _WHITESPACE_RUN.sub("\n", html)


@dataclass(frozen=True, slots=True)
class Frame:
    """The theme's page around our content, captured from a page the theme rendered for us.

    The frame page lives at `frame_path`, as deep as all our own pages, so the theme's relative
    links (stylesheets, scripts, navigation) hold for every page we wrap in it.
    """

    head: tuple[str, ...]  # the frame before the content, split at the title/description markers
    head_markers: tuple[str, ...]  # which marker sat between head[i] and head[i + 1]
    tail: str
    frame_path: str

    @classmethod
    def capture(cls, output: str, frame_path: str) -> "Frame":
        if output.count(CONTENT_MARKER) != 1:
            raise ValueError("the theme did not render the content marker exactly once")
        head, tail = output.split(CONTENT_MARKER)
        if re.search(r"<(pre|textarea)\b", head + tail, re.I) is None:
            head, tail = _collapse(head).rstrip() + "\n", "\n" + _collapse(tail).lstrip()
        parts = re.split(f"({TITLE_MARKER}|{DESCRIPTION_MARKER}|{TOC_MARKER}|{_TOC_HIDDEN})", _toc_slots(head))
        return cls(tuple(parts[0::2]), tuple(parts[1::2]), tail, frame_path)

    def wrap(self, path: str, title: str, description: str, content: str, toc: str = "") -> str:
        """The page; `toc` is its table of contents (`toc_html`), or none: the sidebar is hidden."""
        values = {TITLE_MARKER: str(escape(title)), DESCRIPTION_MARKER: str(escape(description)),
                  TOC_MARKER: toc, _TOC_HIDDEN: "" if toc else "hidden"}

        def own(frame_text: str) -> str:
            # the frame's mentions of its own address (canonical link) become the page's; only the
            # frame's: the page's title, description and content (rule text) reach it unchanged
            return frame_text.replace(self.frame_path, path) if self.frame_path in frame_text else frame_text

        pieces = [own(self.head[0])]
        for marker, text in zip(self.head_markers, self.head[1:]):
            pieces.append(values[marker])
            pieces.append(own(text))
        pieces.append(content)
        pieces.append(own(self.tail))
        return "".join(pieces)


def fallback_frame(site_name: str, frame_path: str, stylesheets: Iterable[str] = (), scripts: Iterable[str] = ()) -> Frame:
    """A plain frame for when no theme output could be captured (it keeps pages usable)."""
    root = root_prefix(frame_path)
    links = "".join(f'<link rel="stylesheet" href="{escape(root + href)}">' for href in stylesheets)
    tags = "".join(f'<script src="{escape(root + src)}"></script>' for src in scripts)
    head = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width,initial-scale=1">\n'
        f"<title>{TITLE_MARKER} - {escape(site_name)}</title>\n"
        f'<meta name="description" content="{DESCRIPTION_MARKER}">\n{links}\n</head>\n<body>\n'
        f'<header><a href="{escape(root) or "./"}">{escape(site_name)}</a></header>\n'
        '<main class="md-typeset">\n'
    )
    parts = re.split(f"({TITLE_MARKER}|{DESCRIPTION_MARKER})", head)
    return Frame(tuple(parts[0::2]), tuple(parts[1::2]), f"\n</main>\n{tags}\n</body>\n</html>\n", frame_path)
