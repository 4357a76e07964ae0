"""The site model: pages, the site they make, and what every page family shares.

Template data is plain Python data (str, int, bool, None, lists, tuples, dicts), so a page's
fingerprint is a hash of it and unchanged pages are not rendered again. Under `mkdocs serve`, a
build's `SiteData` starts from the last one's: what an edit cannot have changed (groupings, list
data, whole pages) is taken from it (`SiteData.reuse`, `SiteData.listed_pages`).
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, TypeVar

from catalog.bounds import LISTING_TITLE
from catalog.model import SigmaDocument, display_path
from catalog.pipeline import Catalog, Entry
from catalog.problems import Problem
from catalog.similarity import Similarity
from catalog.site.addresses import item_path, rule_path, section_path, source_uri
from catalog.site.lists import ListRows

if TYPE_CHECKING:
    from catalog.attack import AttackKnowledge

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Folder:
    """A configured rule folder: `root` as given to `build_catalog`, how to show it, where it lives."""

    root: str
    display: str
    name: str | None = None
    source_url: str | None = None


@dataclass(slots=True)
class Page:
    """One page of the site. `src_uri` is set for the pages MkDocs builds (the browse pages)."""

    path: str  # "rules/<slug>/"; "" for the home page
    title: str
    template: str
    context: dict
    description: str = ""
    src_uri: str | None = None
    nav_title: str | None = None
    wide: bool = False  # a browse page that needs the whole width (the theme's sidebars hidden)
    #: Makes the template data when the page is rendered, instead of `context` (rule pages of a
    #: build): the data of every page is then never in memory at once (catalog.bounds).
    make: Callable[[], dict] | None = field(default=None, repr=False, compare=False)
    _fingerprint: bytes | None = field(default=None, repr=False, compare=False)

    def data(self) -> dict:
        """The template data: `context`, or made now by `make` (and not kept)."""
        return self.make() if self.make is not None else self.context

    def keep_data(self) -> dict:
        """The template data, kept from now on (for changing it: a page made by `make` is made once)."""
        if self.make is not None:
            self.context, self.make = self.make(), None
        return self.context

    def take_fingerprint(self, earlier: "Page") -> None:
        """`earlier`'s fingerprint, when it is the same page (a serve update: the last build's page
        at this path); comparing the data costs less than hashing it again."""
        if (self._fingerprint is None and earlier._fingerprint is not None and self.make is None and earlier.make is None
                and self.template == earlier.template and self.title == earlier.title
                and self.description == earlier.description and self.context == earlier.context):
            self._fingerprint = earlier._fingerprint

    def fingerprint(self) -> bytes:
        """A hash of everything the page is made of, computed once (pages are not changed after
        the site model is built; a page that is must be a new Page). marshal format 0 has no
        back-references, so its bytes depend only on the data (formats 1+ and pickle also encode
        which objects happen to be shared, and would make equal pages look different)."""
        if self._fingerprint is None:
            data = marshal.dumps((self.template, self.title, self.description, self.data()), 0)
            self._fingerprint = hashlib.blake2b(data, digest_size=16).digest()
        return self._fingerprint


#: A page that lists documents: their slugs, and what else makes it (see `SiteData.listed_pages`).
Listing = tuple[Sequence[str], tuple]


def browse_page(path: str, title: str, template: str, context: dict, **options) -> Page:
    """A page of the navigation, built by MkDocs from a stub at `<path>index.md`."""
    return Page(path, title, template, context, src_uri=source_uri(path), **options)


def error_page(path: str, title: str, location: str, message: str) -> Page:
    """What stands at `path` when its page could not be made: the title and what went wrong."""
    return Page(path, title, "page_error.html", {"title": title, "location": location, "message": message})


@dataclass(slots=True)
class Site:
    pages: list[Page] = field(default_factory=list)  # written by the plugin
    browse: list[Page] = field(default_factory=list)  # built by MkDocs, in nav order
    redirects: dict[str, str] = field(default_factory=dict)  # path -> target path
    home: dict = field(default_factory=dict)  # the figures shown on the home page
    files: dict[str, str] = field(default_factory=dict)  # site path -> text: rule files served whole (catalog.bounds)


class SiteData:
    """What the page families of one build share: the catalog, its folders, and lookups over it."""

    def __init__(self, catalog: Catalog, folders: Sequence[Folder] = (), kb: "AttackKnowledge | None" = None,
                 preview: bool = False, similarity: Similarity | None = None, previous: "SiteData | None" = None) -> None:
        """`previous`: the last build's (mkdocs serve), whose results this build reuses where they hold."""
        self.catalog = catalog
        self.preview = preview  # a change preview (`--base`): pages may show more for the author
        self.kb = kb
        self.folders = {folder.root: folder for folder in folders}
        self.entries = catalog.entries
        self.by_slug = {entry.slug: entry for entry in self.entries}
        self.records = None  # history_pages.RuleRecords: git history and test evidence, set by SiteBuilder
        #: what `reuse` made in this build, for the next one: name -> (inputs, result)
        self._made: dict[str, tuple[object, object]] = {}
        self._earlier: dict[str, tuple[object, object]] = {}
        #: what `listed_pages` made in this build, for the next one: name -> (listings, their pages)
        self._pages_made: dict[str, tuple[list[Listing], list[Page]]] = {}
        self._earlier_pages: dict[str, tuple[list[Listing], list[Page]]] = {}
        #: (document entry, the last build's) of the documents that are not the last build's very objects
        self._edited: list[tuple[Entry, Entry]] = []
        if previous is None or kb is not previous.kb or list(self.by_slug) != list(previous.by_slug):
            previous = None  # other documents, or in another order: nothing of the last build holds
        else:
            self._earlier, self._earlier_pages = previous._made, previous._pages_made
            self._edited = [(entry, previous.by_slug[entry.slug]) for entry in self.entries
                            if entry.document is not previous.by_slug[entry.slug].document]
        edited = {entry.slug for entry, _ in self._edited}
        self.rows = {entry.slug: previous.rows[entry.slug] if previous is not None and entry.slug not in edited else _entry_row(entry)
                     for entry in self.entries}
        self.lists = ListRows(self.entries, self.rows, self.display_file, previous.lists if previous is not None else None, edited)
        self.problems_by_file: dict[str, list[Problem]] = defaultdict(list)
        for problem in catalog.problems:
            self.problems_by_file[problem.path].append(problem)
        self._starts: dict[str, list[int]] = defaultdict(list)  # file -> first lines of its documents
        for entry in self.entries:
            self._starts[entry.document.source.file_display].append(entry.document.source.line)
        self.conversions: dict = {}  # slug -> its catalog.conversions.Conversion list (site.queries)
        self.similarity = similarity if similarity is not None else Similarity(catalog)
        self.related_from: dict[str, list[tuple[str, Entry]]] = defaultdict(list)
        for entry in self.entries:
            for relation, target in entry.related:
                if target is not None:
                    self.related_from[target.slug].append((relation, entry))

    def reuse(self, name: str, inputs: object, part: Callable[[Entry], object], make: Callable[[], T]) -> T:
        """`make()`, or what it gave in the last build (mkdocs serve) when that build had the same
        documents in the same order, the same `inputs`, and each edited document's `part` (what
        `make` reads of it) is what it was. A rule file that did not change is the very same object
        (the plugin's load cache), so only the edited few are compared. `make`'s result is shared
        between builds: nothing may change it afterwards."""
        earlier = self._earlier.get(name)
        if earlier is not None and earlier[0] == inputs and all(part(entry) == part(before) for entry, before in self._edited):
            result = earlier[1]
        else:
            result = make()
        self._made[name] = (inputs, result)
        return result  # type: ignore[return-value]

    def listed_pages(self, name: str, listings: list[Listing], make: Callable[..., Page]) -> list[Page]:
        """`make(self, slugs, *args)` for each (slugs, args) of `listings`, a `reuse` result; the
        last build's page of the same slugs and args is reused unless a document it lists has
        another list row now (`make` reads nothing else of the documents)."""
        earlier = self._earlier_pages.get(name)
        unchanged = self.lists.unchanged
        if earlier is not None and earlier[0] is listings:  # the last build's very listings: pages in the same order
            pages = [page if unchanged(slugs) else make(self, slugs, *args) for (slugs, args), page in zip(listings, earlier[1])]
        else:
            known = {args: (slugs, page) for (slugs, args), page in zip(*earlier)} if earlier is not None else {}
            pages = []
            for slugs, args in listings:
                before, page = known.get(args, (None, None))
                pages.append(page if page is not None and before == slugs and unchanged(slugs) else make(self, slugs, *args))
        self._pages_made[name] = (listings, pages)
        return pages

    def problems_of(self, document: SigmaDocument) -> list[Problem]:
        """The problems of a document's file that concern it: the whole file's, and those from its
        first line up to the next document of the file (a collection's documents each get theirs)."""
        source = document.source
        end = min((line for line in self._starts.get(source.file_display, ()) if line > source.line), default=None)
        return [p for p in self.problems_by_file.get(source.file_display, ())
                if not p.line or (p.line >= source.line and (end is None or p.line < end))]

    def rule_rows(self, slugs: Iterable[str]) -> list[dict]:
        return self.lists.short_rows(slugs)

    def display_file(self, root: str, relative: str) -> str:
        """A rule file as the configuration names its folder (never the build machine's path)."""
        folder = self.folders.get(root)
        return display_path(folder.display if folder is not None else root, relative)

    def display_problem_path(self, path: str) -> str:
        for root, folder in self.folders.items():
            prefix = root.rstrip("/") + "/"
            if path.startswith(prefix):
                return self.display_file(root, path[len(prefix):])
            if path == root:
                return folder.display
        return path

    def location(self, problem: Problem) -> str:
        """`file:line:column` of a problem, the file named as the configuration names its folder."""
        path = self.display_problem_path(problem.path)
        if problem.line:
            return f"{path}:{problem.line}:{problem.column or 1}"
        return path


def _entry_row(entry: Entry) -> dict:
    """How every listing shows a document."""
    document = entry.document
    return {
        "path": rule_path(entry.slug),
        "title": shorten(document.title, LISTING_TITLE),  # in full on the rule's own page
        "level": "" if document.level is None else str(document.level),
        "status": "" if document.status is None else str(document.status),
        "kind": document.kind,
    }


# --- grouping documents by a value (levels, authors, fields, log sources, ...) --------------------


@dataclass(slots=True)
class Group:
    """The documents that share one value, and how often each spelling of the value was seen."""

    sample: object  # what the first document gave (e.g. its log source)
    names: dict[str, int] = field(default_factory=dict)
    slugs: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The most frequent spelling (ties: the greatest)."""
        return max(self.names, key=lambda n: (self.names[n], n))


class Grouping(dict[str, Group]):
    """Groups by key; documents must be added one after the other (each is listed once per group)."""

    def add(self, key: str, name: str, slug: str, sample: object = None) -> Group:
        group = self.get(key)
        if group is None:
            group = self[key] = Group(sample)
        group.names[name] = group.names.get(name, 0) + 1
        if not group.slugs or group.slugs[-1] != slug:
            group.slugs.append(slug)
        return group


def list_page(data: SiteData, slugs: Sequence[str], path: str, section: tuple[str, str], heading: str, description: str,
              intro: str | None = None) -> Page:
    """The page listing the documents `slugs` of one group; `section` is (title, section name)."""
    title, name = section
    return Page(path, heading, "list.html", {
        "heading": heading, "section": {"title": title, "path": section_path(name)}, "intro": intro,
        "list": data.lists.context(slugs),
    }, description)


@functools.lru_cache(maxsize=4096)  # a catalog has few authors' lines, each split on every build
def split_authors(author: str | None) -> tuple[str, ...]:
    """`A (Org), B and C` -> (`A (Org)`, `B`, `C`): commas, semicolons, `&` and the word `and`
    outside parentheses separate authors; runs of whitespace become one space."""
    if not author:
        return ()
    names, depth, current = [], 0, []
    for char in author:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        if char in ",;&" and depth == 0:
            names.append("".join(current))
            current = []
        else:
            current.append(char)
    names.append("".join(current))
    found = []
    for name in names:
        found.extend(_AND.split(" ".join(name.split())) if "(" not in name else [" ".join(name.split())])
    return tuple(name for name in found if name)


_AND = re.compile(r"\s+and\s+", re.I)
_PARENTHESES = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")


@functools.lru_cache(maxsize=4096)
def author_key(name: str) -> str:
    """What groups the spellings of one author: `Jane Doe (Org)`, `jane  doe` -> `jane doe`."""
    bare = " ".join(_PARENTHESES.sub(" ", name).split()).strip(" .,-'\"").casefold()
    return bare or " ".join(name.split()).casefold()


def author_path(name: str) -> str:
    return item_path("authors", author_key(name))


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def description_of(document: SigmaDocument) -> str:
    """A page's meta description: the document's description (else title) on one line."""
    return shorten(" ".join((document.description or document.title).split()), 300)
