"""The facts header of a rule page: level and status badges, log source, authors, dates, and the
actions on the rule file (view and edit on its host, raw file, download, copy).

What the Details table lists in full at the bottom, here in one glance under the title.
"""

from __future__ import annotations

from urllib.parse import quote

from catalog.model import FilterRule, Rule
from catalog.pipeline import Entry
from catalog.site.addresses import external_url, item_path
from catalog.site.model import SiteData, author_path, split_authors


def host_links(data: SiteData, entry: Entry) -> tuple[str | None, str | None]:
    """(view, edit) URLs of the rule file on its host, where its folder has a `source_url`.

    GitHub (`/blob/`) and GitLab (`/-/blob/`) both edit at the same address with `edit` for `blob`;
    other hosts get the view link only.
    """
    source = entry.document.source
    folder = data.folders.get(source.root)
    if folder is None or not folder.source_url:
        return None, None
    view = external_url(f"{folder.source_url.rstrip('/')}/{quote(source.path, safe='/')}")
    if view is None or "/blob/" not in view:
        return view, None
    return view, external_url(view.replace("/blob/", "/edit/", 1))


def facts(data: SiteData, entry: Entry, history: dict | None, raw_file: str | None) -> dict:
    """The header's data; `history` is the History section's (git dates), `raw_file` the site path
    of the served rule file."""
    document = entry.document
    logsources = []
    if isinstance(document, (Rule, FilterRule)) and document.logsource.label != "any":
        logsources = [{"text": single.label, "path": item_path("logsources", single.label)} for single in document.logsource.each]
    view, edit = host_links(data, entry)
    return {
        "level": str(document.level) if document.level else None,
        "status": str(document.status) if document.status else None,
        "level_path": item_path("levels", str(document.level)) if document.level else None,
        "status_path": item_path("statuses", str(document.status)) if document.status else None,
        "logsources": logsources,
        "authors": [{"text": name, "path": author_path(name)} for name in split_authors(document.author)],
        "dates": dates(document, history),
        "view": view,
        "edit": edit,
        "raw_file": raw_file,
        "file_name": document.source.path.rsplit("/", 1)[-1],
    }


def dates(document, history: dict | None) -> list[dict]:
    """Created and modified as the rule says, with git's dates beside them where they differ."""
    found = []
    created_git = history.get("created") if history else None
    changed_git = history.get("last_changed") if history else None
    written_created = str(document.date) if document.date else None
    written_modified = str(document.modified) if document.modified else None
    disagrees = bool(history and history.get("disagrees"))
    for label, written, git, warn in (("created", written_created, created_git, False),
                                      ("modified", written_modified, changed_git, disagrees)):
        if written:
            differs = git is not None and git[:10] != written[:10]
            found.append({"label": label, "date": written, "git": git if differs or warn else None, "warn": warn})
        elif git:  # the rule does not say: git's date, marked as such
            found.append({"label": label, "date": None, "git": git, "warn": False})
    return found
