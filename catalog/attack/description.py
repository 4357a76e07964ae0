"""The short description of an ATT&CK object that technique pages show.

ATT&CK descriptions are Markdown with citations, links and HTML tags, several paragraphs long. The
catalog keeps the first paragraph as plain text, at most `MAX_DESCRIPTION` characters, ending at a
sentence where it can; the snapshot ships exactly that, and full bundles are shortened the same way.
"""

from __future__ import annotations

import re

MAX_DESCRIPTION = 600
_CITATION = re.compile(r"\s*\(Citation:[^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TAG = re.compile(r"<[^>]{0,200}>")


def short_description(text: object) -> str:
    if not isinstance(text, str):
        return ""
    paragraph = text.strip().split("\n\n", 1)[0]
    plain = " ".join(_TAG.sub("", _LINK.sub(r"\1", _CITATION.sub("", paragraph))).split())
    if len(plain) <= MAX_DESCRIPTION:
        return plain
    cut = plain[:MAX_DESCRIPTION]
    end = cut.rfind(". ")
    return cut[: end + 1] if end > MAX_DESCRIPTION // 3 else cut[: MAX_DESCRIPTION - 1].rstrip() + "…"
