"""Helpers for the site tests: an internal link checker and plain-text views of built pages.

`broken_links(site)` parses every HTML file of a built site with `html.parser` and checks that each
internal href/src (relative or site-absolute, fragments and queries ignored) names a file of the
site: a file itself, or a folder with an index.html. External links (http:, https:, mailto:, ...)
are not followed.
"""

from __future__ import annotations

import os
import posixpath
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_LINK_ATTRIBUTES = {"a": "href", "link": "href", "script": "src", "img": "src", "iframe": "src", "source": "src"}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        name = _LINK_ATTRIBUTES.get(tag)
        if name is None:
            return
        for key, value in attrs:
            if key == name and value is not None:
                self.links.append(value)


def links_of(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.links


def _resolves(site: Path, page: Path, href: str, cache: dict[str, bool]) -> bool:
    parts = urlsplit(href)
    path = unquote(parts.path)
    if not path:  # "#fragment" or "?query" only: the page itself
        return True
    base = page.parent.relative_to(site).as_posix()
    target = posixpath.normpath(path.lstrip("/") if path.startswith("/") else posixpath.join(base, path))
    if target.startswith("../") or target == "..":
        return False  # leaves the site
    if target in cache:
        return cache[target]
    full = site / target
    found = full.is_file() or (full.is_dir() and (full / "index.html").is_file())
    cache[target] = found
    return found


def is_external(href: str) -> bool:
    scheme = urlsplit(href).scheme.lower()
    return bool(scheme) or href.startswith("//")


def broken_links(site: str | os.PathLike) -> list[tuple[str, str]]:
    """(page, href) for every internal link of the site that names no file."""
    site = Path(site)
    broken = []
    cache: dict[str, bool] = {}
    for page in sorted(site.rglob("*.html")):
        for href in links_of(page.read_text(encoding="utf-8")):
            if is_external(href):
                continue
            if not _resolves(site, page, href, cache):
                broken.append((page.relative_to(site).as_posix(), href))
    return broken


# --- reading pages ------------------------------------------------------------------------------

_BLOCKS = {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "pre", "nav", "table", "ul", "ol", "br", "thead", "tbody"}


class _Article(HTMLParser):
    """The text of the page content (inside <article>), blocks on their own lines, cells ' | '."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # inside <article>
        self.skip = 0
        self.pre = 0
        self.out: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.depth += 1
        if not self.depth:
            return
        if tag in ("script", "style"):
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in _BLOCKS:
            self.out.append("\n")
        if tag in ("td", "th"):
            self.out.append(" | ")

    def handle_endtag(self, tag):
        if not self.depth:
            return
        if tag in ("script", "style"):
            self.skip -= 1
        if tag == "pre":
            self.pre -= 1
        if tag in _BLOCKS:
            self.out.append("\n")
        if tag == "article":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and not self.skip:
            self.out.append(data if self.pre else " ".join(data.split(" ")))


def article_text(html: str) -> str:
    """The page content as text, one block per line, blank lines dropped, lines stripped."""
    parser = _Article()
    parser.feed(html)
    text = "".join(parser.out)
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


class _Tables(HTMLParser):
    """Every <table> inside an element with the given class: rows of cell texts."""

    def __init__(self, css_class: str) -> None:
        super().__init__(convert_charrefs=True)
        self.css_class = css_class
        self.stack: list[bool] = []  # per open element: is it (inside) the wanted container
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.row: list[str] | None = None

    _VOID = {"br", "img", "input", "meta", "link", "hr", "wbr"}

    def handle_starttag(self, tag, attrs):
        inside = bool(self.stack and self.stack[-1])
        classes = (dict(attrs).get("class") or "").split()
        if tag not in self._VOID:
            self.stack.append(inside or self.css_class in classes)
        if not (inside or self.css_class in classes):
            return
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.row = []
            self.tables[-1].append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in self._VOID:
            return
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables(html: str, css_class: str) -> list[list[list[str]]]:
    parser = _Tables(css_class)
    parser.feed(html)
    return parser.tables


class _Anchors(HTMLParser):
    """(href, text) of the links inside elements with the given class."""

    def __init__(self, css_class: str) -> None:
        super().__init__(convert_charrefs=True)
        self.css_class = css_class
        self.stack: list[bool] = []
        self.links: list[tuple[str, str]] = []
        self.current: list[str] | None = None
        self.href = ""

    def handle_starttag(self, tag, attrs):
        inside = bool(self.stack and self.stack[-1])
        attributes = dict(attrs)
        here = inside or self.css_class in (attributes.get("class") or "").split()
        if tag not in _Tables._VOID:
            self.stack.append(here)
        if here and tag == "a":
            self.current, self.href = [], attributes.get("href") or ""

    def handle_endtag(self, tag):
        if tag == "a" and self.current is not None:
            self.links.append((self.href, "".join(self.current).strip()))
            self.current = None
        if tag not in _Tables._VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self.current is not None:
            self.current.append(data)


def anchors(html: str, css_class: str) -> list[tuple[str, str]]:
    parser = _Anchors(css_class)
    parser.feed(html)
    return parser.links


class _CodeText(HTMLParser):
    """The text of the first <pre><code> inside an element with the given class."""

    def __init__(self, css_class: str) -> None:
        super().__init__(convert_charrefs=True)
        self.css_class = css_class
        self.stack: list[bool] = []
        self.in_code = False
        self.done = False
        self.out: list[str] = []

    def handle_starttag(self, tag, attrs):
        inside = bool(self.stack and self.stack[-1])
        here = inside or self.css_class in (dict(attrs).get("class") or "").split()
        if tag not in _Tables._VOID:
            self.stack.append(here)
        if here and tag == "code" and not self.done:
            self.in_code = True

    def handle_endtag(self, tag):
        if tag == "code" and self.in_code:
            self.in_code, self.done = False, True
        if tag not in _Tables._VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self.in_code:
            self.out.append(data)


def code_text(html: str, css_class: str) -> str:
    parser = _CodeText(css_class)
    parser.feed(html)
    return "".join(parser.out)
