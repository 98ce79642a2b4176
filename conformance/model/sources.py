"""The bibliography: every document a requirement cites, and how each threshold rests on it.

profiles/sources.yaml is the registry of shipped sources (schemas/sources.schema.json): a key, the
full citation (title, publisher, document number, version, year, URL) and a note. A profile may add
its own sources (its `sources:` list) for documents the registry lacks, never redefine a shipped key.

A requirement cites sources as `cites: ["KEY the exact place, and what it says"]`: the first word is
the key, checked against the registry, the rest names the section, table or row. Its `basis` says
how the threshold rests on them: `source` (the number is the source's own), `{derived: "the
arithmetic"}` or `{assumed: "the reason"}`. Reports print the full citation and the basis, and
`profiles coverage` counts the bases per profile; `profiles sources` renders docs/sources.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ConfigError, did_you_mean
from .paths import profiles_dir
from .yamlfile import YamlDoc, load_yaml

REGISTRY_FILE = "sources.yaml"
BASIS_KINDS = ("source", "derived", "assumed")
BASIS_WORDS = {"source": "taken from the source", "derived": "derived from the source",
               "assumed": "assumed", "unstated": "basis not stated"}


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    publisher: str = ""
    year: int | None = None
    authors: str = ""
    number: str = ""
    version: str = ""
    url: str = ""
    note: str = ""
    origin: str = ""  # file:line of its definition

    def citation(self) -> str:
        """The full citation on one line: publisher, "title", number and version, year, URL."""
        parts = [self.authors] if self.authors else []
        parts.append(self.publisher) if self.publisher else None
        parts.append(f'"{self.title}"')
        doc = " ".join(p for p in (self.number, self.version) if p)
        if doc:
            parts.append(doc)
        if self.year:
            parts.append(str(self.year))
        text = ", ".join(parts)
        return f"{text}. {self.url}" if self.url else f"{text}."

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("key", "title", "publisher", "year", "authors", "number", "version",
                                           "url", "note") if getattr(self, k) not in ("", None)}
        d["citation"] = self.citation()
        return d


@dataclass(frozen=True)
class Citation:
    key: str
    at: str  # the section, table or row, and what it says

    @property
    def text(self) -> str:
        return f"{self.key} {self.at}".strip()

    def to_dict(self) -> dict:
        return {"key": self.key, "at": self.at}


@dataclass(frozen=True)
class Basis:
    kind: str  # source, derived, assumed; "unstated" for a profile that gives none
    note: str = ""

    @property
    def text(self) -> str:
        return f"{self.kind}: {self.note}" if self.note else self.kind

    def to_dict(self) -> dict:
        return {"kind": self.kind, "note": self.note}


UNSTATED = Basis("unstated")


def parse_citation(text: str) -> Citation:
    key, at = (text.split(None, 1) + [""])[:2]
    return Citation(key, at.strip())


def parse_basis(raw: Any) -> Basis:
    """`source`, or a one-key mapping {source|derived|assumed: note} (the schema checked the shape)."""
    if raw is None:
        return UNSTATED
    if isinstance(raw, str):
        return Basis(raw.strip())
    (kind, note), = raw.items()
    return Basis(kind, str(note or "").strip())


def _source_from(raw: dict, origin: str) -> Source:
    return Source(key=str(raw["key"]), title=str(raw["title"]), publisher=str(raw.get("publisher") or ""),
                  year=raw.get("year"), authors=str(raw.get("authors") or ""), number=str(raw.get("number") or ""),
                  version=str(raw.get("version") or ""), url=str(raw.get("url") or ""),
                  note=" ".join(str(raw.get("note") or "").split()), origin=origin)


def read_sources(doc: YamlDoc, where: tuple, items: Iterable[dict]) -> dict[str, Source]:
    """Sources listed at `where` in `doc` (already schema-checked), refusing a key listed twice."""
    found: dict[str, Source] = {}
    for i, raw in enumerate(items):
        key = str(raw["key"])
        if key in found:
            raise doc.error(where + (i, "key"), f'source "{key}" is listed twice (first at {found[key].origin})')
        found[key] = _source_from(raw, f"{doc.source}:{doc.line(where + (i,)) or '?'}")
    return found


def load_registry_file(path: Path, display: str | None = None) -> dict[str, Source]:
    from .schema_errors import validate as schema_validate

    doc = load_yaml(path, display or str(path))
    if not isinstance(doc.data, dict):
        raise ConfigError(doc.source, 1, None, 'a sources file is a mapping with one key, "sources"')
    schema_validate(doc, "sources.schema.json")
    return read_sources(doc, ("sources",), doc.data["sources"])


@cache
def registry() -> dict[str, Source]:
    """The shipped registry, profiles/sources.yaml."""
    return load_registry_file(profiles_dir() / REGISTRY_FILE, f"profiles/{REGISTRY_FILE}")


def check_citation(doc: YamlDoc, where: tuple, text: str, known: dict[str, Source]) -> Citation:
    c = parse_citation(text)
    if c.key not in known:
        raise doc.error(where, f'cites unknown source "{c.key}"{did_you_mean(c.key, known)}: a citation starts '
                               f"with a key of profiles/{REGISTRY_FILE} or of the profile's own `sources:` "
                               "(profiles sources lists them)")
    return c  # the schema made sure a place follows the key


# ------------------------------------------------------------------------------------------ render


def render_markdown(sources: dict[str, Source], cited_by: dict[str, list[str]]) -> str:
    """docs/sources.md: every registry source with its full citation, note, and who cites it."""
    lines = ["# Sources", "",
             "<!-- Generated by `edge-conformance profiles sources --markdown` from profiles/sources.yaml;",
             "     edit that file, then regenerate this one (a test checks they agree). -->", "",
             "Every requirement of the shipped profiles cites one or more of these documents by key, with the",
             "exact place (`OPNFV-EC §4.1 Table 1`), and states its *basis*: whether its threshold is taken",
             "from the source as written, derived from it (the arithmetic is given), or assumed (the reason",
             "is given). `edge-conformance profiles explain` prints the full citation of every requirement;",
             "`edge-conformance profiles coverage` counts the bases per profile.", ""]
    for key in sorted(sources, key=str.lower):
        s = sources[key]
        lines += [f"## {key}", "", s.citation(), ""]
        if s.note:
            lines += [s.note, ""]
        users = cited_by.get(key, [])
        if users:
            lines += [f"Cited by: {', '.join(users)}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def describe_basis(basis: Basis) -> str:
    word = BASIS_WORDS.get(basis.kind, basis.kind)
    return f"{word}: {basis.note}" if basis.note else word


def basis_shares(kinds: list[str]) -> str:
    """'4 from a source (20 %), 10 derived (50 %), 6 assumed (30 %)' (and any unstated)."""
    total = len(kinds) or 1
    words = {"source": "from a source", "derived": "derived", "assumed": "assumed", "unstated": "basis unstated"}
    parts = [f"{kinds.count(k)} {w} ({kinds.count(k) * 100 / total:.0f} %)" for k, w in words.items()
             if kinds.count(k) or k != "unstated"]
    return ", ".join(parts)
