"""Re-serialising detection parts as YAML for the Stages section (comments are gone by then).

Values are single-quoted like hand-written Sigma, so `\\wmi*` reads the same as in the rule body;
keys stay plain where YAML allows.
"""

from __future__ import annotations

import json
import re

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.|\-/ ]*$")
_INDENT = "    "


def to_yaml(value: object) -> str:
    return "\n".join(_lines(value, 0)) + "\n"


def _lines(value: object, depth: int) -> list[str]:
    pad = _INDENT * depth
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        lines = []
        for key, item in value.items():
            head = f"{pad}{_key(key)}:"
            if isinstance(item, (dict, list)) and item:
                lines.append(head)
                lines.extend(_lines(item, depth + 1))
            else:
                lines.append(f"{head} {_scalar(item)}")
        return lines
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = _lines(item, depth + 1)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [pad + _scalar(value)]


def _key(key: object) -> str:
    text = str(key)
    return text if _PLAIN_KEY.match(text) and not text.endswith(" ") else _quoted(text)


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)  # as the rule wrote it (catalog.yamlsafe.WrittenInt)
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return _quoted(str(value))


def _quoted(text: str) -> str:
    if text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar
