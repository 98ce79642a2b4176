"""Compare JSON documents with expected fields given as dotted paths (`status`, `items.0.id`)."""

from __future__ import annotations

from typing import Any

_MISSING = object()


def lookup(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def mismatches(doc: Any, expected: dict[str, Any]) -> list[str]:
    problems = []
    for path, want in expected.items():
        got = lookup(doc, path)
        if got is _MISSING:
            problems.append(f"JSON field {path} missing, expected {want!r}")
        elif got != want:
            problems.append(f"JSON field {path} = {got!r}, expected {want!r}")
    return problems
