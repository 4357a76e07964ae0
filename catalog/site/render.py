"""Rendering: the Jinja2 environment and the theme frame of our own pages.

Rule files are untrusted input. Every template is autoescaped; nothing from a rule is ever marked
safe in a template. The only `Markup` values that reach templates are built here from escaped
text: the highlighted YAML (yaml_html) and the theme frame captured from the theme's own output.
"""

from __future__ import annotations

import contextvars
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import jinja2
import jinja2.compiler
import orjson
from markupsafe import Markup, escape

from catalog.site.addresses import external_url, page_href, root_prefix
from catalog.site.yaml_html import highlight_yaml

TEMPLATES = Path(__file__).parent / "templates"

# --- JSON -----------------------------------------------------------------------------------------

def html_safe_json(data: object, indent: int | None = None) -> bytes:
    """JSON whose text holds no <, > or & (escaped as \\u003c...): rule text stays inert even where
    a JSON file is shown as HTML by mistake. The data reads back unchanged.

    Compact JSON comes from orjson: the bytes of `json.dumps` (floats as shortest decimals aside:
    0.00001 for 1e-05) in a tenth of its time, for catalog.json's megabytes."""
    if indent is None:
        try:
            raw = orjson.dumps(data)
        except orjson.JSONEncodeError:  # an integer past 64 bits, a key that is no string: json takes them
            pass
        else:
            return raw.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(data, ensure_ascii=False, indent=indent, separators=separators)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")


# --- the Jinja2 environment ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    """Where the page being rendered is: links from it are relative to it."""

    root: str  # from the page back to the site root ("../../")
    directory_urls: bool


#: The page `Renderer.render` is rendering (a context variable: each thread renders its own). The
#: link filters read it, not the template context: then the shared macros need no context, and a
#: page that imports them does not build their module again (`import ... with context` did, per page).
_rendering: contextvars.ContextVar[_Place] = contextvars.ContextVar("rendering")


def _url(target: str) -> str:
    """A link from the page being rendered to the site page `target` (relative, so sites move)."""
    place = _rendering.get()
    href = place.root + page_href(target, place.directory_urls)
    return href or "./"


def _file_url(target: str) -> str:
    """A link to a file of the site (an export, an asset)."""
    return _rendering.get().root + target


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
    return Markup(escaped(text).replace("\\", "\\<wbr>").replace("/", "/<wbr>").replace(".", ".<wbr>"))


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


_CALL_MARKERS = {"_loop_vars", "_block_vars"}  # what the generated code passes for functions that take the context


class _Context(jinja2.runtime.Context):
    """Calls a template's macros directly, with what Jinja's generic call and Macro.__call__ work
    out from the call each time (the macro's function, with each argument given by position)."""

    def call(__self, __obj, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201, N805 - Jinja's signature
        if (type(__obj) is jinja2.runtime.Macro and len(args) == __obj._argument_count
                and not (__obj.caller or __obj.catch_kwargs or __obj.catch_varargs or __obj._environment.is_async)
                and kwargs.keys() <= _CALL_MARKERS and not (args and isinstance(args[0], jinja2.nodes.EvalContext))):
            rendered = __obj._func(*args)
            return Markup(rendered) if __obj._default_autoescape else rendered
        return super().call(__obj, *args, **kwargs)


class _Environment(jinja2.Environment):
    """Template data is plain dicts: `row.title` looks up the key first (no AttributeError on the way)."""

    code_generator_class = _CodeGenerator
    context_class = _Context

    def make_globals(self, d):  # noqa: ANN001, ANN201 - Jinja's signature
        """A template's globals as a plain dict, not Jinja's ChainMap over the environment's: every
        render and include copies them (into its context and a set of their names), and a ChainMap
        is copied in Python. Our environment's globals are complete before any template loads."""
        return {**self.globals, **(d or {})}

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
        token = _rendering.set(_Place(root_prefix(path), self.directory_urls))
        try:
            return self.env.get_template(template).render(context)
        finally:
            _rendering.reset(token)


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
