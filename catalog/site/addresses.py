"""Every address of the catalog site, the slugs they are made of, and the links between them.

Addresses are relative to the site root, directory style (`page_href` makes them file style when
`use_directory_urls` is off):

- `rules/<slug>/`           one page per Sigma document (rule, correlation, filter); the slug is
                            `Entry.slug`, taken from the rule id, so a page keeps its address when
                            its file moves or is renamed.
- `rule/<id>/`              a tiny redirect to `rules/<slug>/` for every document with an id, so
                            `/rule/<id>/` links resolve.
- `tactics/<shortname>/`, `techniques/<t1059-001>/`, `indicators/<hash>/`, `authors/<key>/`,
  `tags/<key>/`, `fields/<key>/`, `logsources/<key>/`, `levels/<key>/`, `statuses/<key>/`
                            one page per item of each browse dimension.
- `<section>/`              the browse index pages (in the navigation; MkDocs builds them from
                            `<section>/index.md`).
- `exports/...`, `assets/sigma-catalog/...`   the downloads, our stylesheet, script and search index.

Every page the plugin writes itself sits exactly two folders deep, so one captured theme frame
fits them all (`FRAME_PATH`). Keys come from `key_slug`: lower-case ASCII letters, digits and
dashes only, never a Windows device name (`nul`, `con`, `com1`...), so no rule text can choose a
file name.
"""

from __future__ import annotations

import functools
import hashlib
import re

from catalog.analysis import IndicatorKey
from catalog.pipeline import is_reserved_name, slugify

#: Where the theme frame page lives: as deep as every page we write ourselves.
FRAME_PATH = "sigma-catalog-frame/frame/"
FRAME_SRC_URI = FRAME_PATH + "index.md"

ASSETS = "assets/sigma-catalog/"
STYLESHEET = ASSETS + "sigma-catalog.css"
SCRIPT = ASSETS + "sigma-catalog.js"
#: The script's way back to the site's root (it finds every page from there); written into the
#: script in place of SCRIPT_ROOT_MARKER when the site is built.
SCRIPT_TO_ROOT = "../" * ASSETS.count("/")
SCRIPT_ROOT_MARKER = "__SIGMA_CATALOG_SCRIPT_TO_ROOT__"
SEARCH_INDEX = ASSETS + "search-index.json"
#: The rows of every rule list (catalog/site/lists.py).
LIST_ROWS = ASSETS + "rules.json"
EXPORTS = "exports/"
CATALOG_JSON = EXPORTS + "catalog.json"
TECHNIQUES_CSV = EXPORTS + "rules-techniques.csv"
NAVIGATOR = EXPORTS + "navigator/"
CHANGES = "changes/"
#: The Problems page, and its former address (a redirect keeps old links working).
PROBLEMS = "problems/"
OLD_PROBLEMS = "errors/"
#: The Recently changed page (rules changed by the newest commits).
RECENT = "recent/"
#: The All rules page; every rule page is below it.
RULES = "rules/"
#: The search index's pattern of a rule page address (the script puts the slug in).
RULE_PATTERN = RULES + "{slug}/"

_CLEAN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TECHNIQUE_ID = re.compile(r"T\d{4}(?:\.\d{3})?")
#: The pages the plugin writes: one or two clean folders deep.
_SAFE_PAGE_PATH = re.compile(r"[a-z0-9-]+/(?:[a-z0-9-]+/)?")
_SAFE_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f\"'<>`\\]+", re.I)


# --- slugs ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def key_slug(text: str) -> str:
    """A safe, stable address part for any text: itself when already clean, else slug + hash."""
    lowered = text.strip().lower()
    if len(lowered) <= 60 and _CLEAN.fullmatch(lowered) and not is_reserved_name(lowered):
        return lowered
    digest = hashlib.sha1(lowered.encode("utf-8")).hexdigest()
    base = slugify(lowered, 48)
    return f"{base}-{digest[:8]}" if base else digest[:12]


def technique_slug(technique_id: str) -> str:
    if _TECHNIQUE_ID.fullmatch(technique_id):
        return technique_id.lower().replace(".", "-")
    return key_slug(technique_id)


@functools.lru_cache(maxsize=1 << 14)  # a shared indicator is linked from each rule that has it
def indicator_slug(key: IndicatorKey) -> str:
    """One page per shared indicator: its address is a hash of the normalised (field, kind, value)."""
    return hashlib.sha1("\x1f".join(key).encode("utf-8")).hexdigest()[:16]


# --- page addresses -------------------------------------------------------------------------------


def rule_path(slug: str) -> str:
    return RULE_PATTERN.replace("{slug}", slug)


def rule_file_path(slug: str) -> str:
    """The rule file as written, served next to a page that shows it cut (catalog.bounds.RULE_BODY)."""
    return rule_path(slug) + "rule.yml"


def query_file_path(slug: str, target: str, number: int) -> str:
    """A rule's whole query for one target, served next to its page when the page shows it cut."""
    return rule_path(slug) + f"query-{slugify(target)}-{number + 1}.txt"


def is_rule_path(path: str) -> bool:
    return path.startswith(RULES)


def rule_redirect_path(rule_id: str | None) -> str | None:
    """`rule/<id>/` for a document id that is safe as an address, else None."""
    key = (rule_id or "").strip().lower()
    if key and len(key) <= 100 and _CLEAN.fullmatch(key) and not is_reserved_name(key):
        return f"rule/{key}/"
    return None


def technique_path(technique_id: str) -> str:
    return f"techniques/{technique_slug(technique_id)}/"


def tactic_path(shortname: str) -> str:
    return f"tactics/{key_slug(shortname)}/"


def indicator_path(key: IndicatorKey) -> str:
    return f"indicators/{indicator_slug(key)}/"


def section_path(section: str) -> str:
    """A browse section's index page: `levels/`, `fields/`, ..."""
    return f"{section}/"


def item_path(section: str, value: str) -> str:
    """The page of one value of a browse section: `levels/high/`, `fields/commandline/`, ..."""
    return f"{section}/{key_slug(value)}/"


def source_uri(path: str) -> str:
    """The Markdown file MkDocs builds the page at `path` from (the browse pages)."""
    return path + "index.md"


def is_safe_page_path(path: str) -> bool:
    """Whether the plugin may write a page at `path` (clean folders only, one or two deep)."""
    return _SAFE_PAGE_PATH.fullmatch(path) is not None


# --- links ----------------------------------------------------------------------------------------


def page_href(path: str, directory_urls: bool) -> str:
    """The href of a site page at `path` ("rules/x/", "" for the home page), from the site root."""
    if directory_urls or not (path == "" or path.endswith("/")):
        return path
    return path + "index.html"


def root_prefix(path: str) -> str:
    """From the page at `path` ("a/b/") back to the site root ("../../")."""
    return "../" * path.count("/")


def external_url(value: object) -> str | None:
    """`value` when it is an http(s) URL that is safe to put in an href, else None.

    Anything else (javascript:, data:, relative paths, text with spaces, quotes or angle
    brackets) is refused: rule files are untrusted, and only http(s) references become links.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) <= 8 or _SAFE_URL.fullmatch(text) is None:
        return None
    return text
