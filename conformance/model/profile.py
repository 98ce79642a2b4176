"""Requirement profiles: parsing, inheritance and strict validation.

A profile is a YAML file of requirements (see schemas/profile.schema.json). Validation happens in
two passes: the JSON Schema catches structural mistakes (unknown keys, wrong types), then semantic
checks catch what a schema cannot (duplicate ids, unknown checks and params, expectations whose
metrics or units do not fit the check). Every error names file:line and the field path.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import catalog
from . import expect as E
from .errors import ConfigError, did_you_mean
from .paths import profiles_dir
from .sampling import Sampling, SamplingError, parse_sampling
from .schema_errors import validate as schema_validate
from .sources import (REGISTRY_FILE, UNSTATED, Basis, Citation, Source, check_citation, parse_basis, parse_citation,
                      read_sources, registry)
from .units import UnitError, parse_quantity
from .yamlfile import YamlDoc, load_yaml

LEVELS = ("must", "should", "may")


@dataclass
class Requirement:
    id: str
    title: str
    level: str
    check: str
    applies_to: list[str]
    params: dict[str, Any]
    expect: E.Expectation
    rationale: str = ""
    source: str = ""  # free text of profiles written before cites and basis
    cites: list[Citation] = field(default_factory=list)
    basis: Basis = UNSTATED
    quorum: float | None = None  # fleet rule: share of sites (0..1) that must pass
    sample: Sampling | None = None  # with a quorum: measure only a sample of the sites (model/sampling.py)
    profile: str = ""
    origin: str = ""  # file:line where it was (last) defined
    raw_params: dict[str, Any] = field(default_factory=dict, repr=False)  # as written, for overrides
    unscaled: dict[str, float] = field(default_factory=dict)  # --duration-scale: param -> the profile's seconds

    @property
    def source_text(self) -> str:
        """Citations and basis on one line (results.json `source`, JUnit, Markdown)."""
        if not self.cites and self.basis is UNSTATED:
            return self.source
        return "; ".join([c.text for c in self.cites] + [self.basis.text])

    @property
    def suite(self) -> str:
        return catalog.suite_of(self.check)

    @property
    def metric_dimensions(self) -> dict[str, str]:
        spec = catalog.get(self.check)
        return dict(spec.metrics) if spec else {}


@dataclass
class ProfileFile:
    id: str
    version: str
    path: str
    sha256: str


@dataclass
class Profile:
    id: str
    version: str
    title: str
    description: str
    requirements: list[Requirement]
    sources: dict[str, Source] = field(default_factory=dict)  # the profile chain's own, not the registry's
    topology: str | None = None
    path: str = ""
    sha256: str = ""
    chain: list[ProfileFile] = field(default_factory=list)  # this file, then its ancestors

    def requirement(self, rid: str) -> Requirement | None:
        return next((r for r in self.requirements if r.id == rid), None)

    def cited_sources(self) -> dict[str, Source]:
        """Every source its requirements cite, with the full citation, in key order."""
        known = {**registry(), **self.sources}
        keys = sorted({c.key for r in self.requirements for c in r.cites}, key=str.lower)
        return {k: known[k] for k in keys if k in known}

    def summary(self) -> dict:
        return {"id": self.id, "version": self.version, "title": self.title, "sha256": self.sha256,
                "source": self.path, "extends": [c.id for c in self.chain[1:]],
                "sources": [s.to_dict() for s in self.cited_sources().values()]}


def list_profiles() -> list[Path]:
    """The shipped profiles (profiles/*.yaml but the bibliography, sources.yaml)."""
    return sorted(p for p in profiles_dir().glob("*.yaml") if p.name != REGISTRY_FILE)


def is_path_ref(ref: str) -> bool:
    """A profile reference names a YAML file (else a shipped profile's name)."""
    return "/" in ref or ref.endswith((".yaml", ".yml"))


def resolve_ref(ref: str, relative_to: Path | None = None) -> Path:
    """A profile reference is a shipped profile's name or a path to a YAML file."""
    if is_path_ref(ref):
        p = Path(ref)
        if not p.is_absolute() and relative_to is not None:
            return relative_to / p  # `extends: ../x.yaml` is relative to the extending file
        return p
    shipped = profiles_dir() / f"{ref}.yaml"
    if shipped.exists():
        return shipped
    names = [p.stem for p in list_profiles()]
    raise ConfigError(None, None, None, f'unknown profile "{ref}"{did_you_mean(ref, names)}'
                                        f" (shipped: {', '.join(names) or 'none'}; or give a path)")


# How a profile reference (a load_profile ref, or an `extends:` value with the extending file's folder)
# becomes a file: resolve_ref, unless the caller gives its own (verify: only files of the bundle).
Resolver = Callable[[str, Path | None], Path]


def load_profile(ref: str, resolver: Resolver | None = None, *, check_citations: bool = True) -> Profile:
    """The profile `ref` names, its `extends` chain resolved by `resolver` (default resolve_ref).

    `check_citations=False` (verify): citations are taken as written, whatever this installation's
    bibliography holds. They decide nothing, and a bundle made where the bibliography had another key
    must still verify."""
    resolve = resolver or resolve_ref
    return _load(resolve(ref, None), seen=(), resolve=resolve, checked=check_citations)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        try:
            return "profiles/" + str(path.resolve().relative_to(profiles_dir().resolve()))
        except ValueError:
            return str(path)


def _load(path: Path, seen: tuple[str, ...], resolve: Resolver = resolve_ref, checked: bool = True) -> Profile:
    display = _display(path)
    if path.name == REGISTRY_FILE and path.parent.resolve() == profiles_dir().resolve():
        raise ConfigError(display, None, None, "is the bibliography the profiles cite, not a profile "
                                               "(edge-conformance profiles sources lists it)")
    doc = load_yaml(path, display)
    if not isinstance(doc.data, dict):
        raise ConfigError(display, doc.line(()) or 1, None, "a profile must be a YAML mapping with id, version, "
                                            "title and requirements")
    schema_validate(doc, "profile.schema.json")
    data = doc.data
    _check_duplicate_ids(doc)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    me = ProfileFile(data["id"], str(data["version"]), display, sha)

    parent: Profile | None = None
    if "extends" in data:
        key = str(path.resolve())
        if key in seen:
            raise doc.error(("extends",), "profiles extend each other in a cycle")
        try:
            parent_path = resolve(data["extends"], path.parent)
            if not parent_path.is_file():
                raise doc.error(("extends",), f'no profile file "{data["extends"]}" (looked for {parent_path})')
            parent = _load(parent_path, seen + (key,), resolve, checked)
        except ConfigError as exc:
            if exc.source is None:  # an unknown name: point at our extends line
                raise doc.error(("extends",), exc.message) from None
            raise

    own_sources = read_sources(doc, ("sources",), data.get("sources") or [])
    inherited = parent.sources if parent else {}
    for i, key in enumerate(own_sources if checked else ()):
        if key in registry():
            raise doc.error(("sources", i, "key"), f'source "{key}" is already in profiles/sources.yaml '
                                                   f"({registry()[key].citation()}): cite it, or use another key")
        if key in inherited:
            raise doc.error(("sources", i, "key"), f'source "{key}" is already defined by a profile this one '
                                                   f"extends ({inherited[key].origin}): cite it, or use another key")
    known_sources = {**registry(), **inherited, **own_sources} if checked else None

    raw_reqs: dict[str, tuple[dict, tuple, YamlDoc]] = {}
    order: list[str] = []
    if parent:
        for r in parent.requirements:
            raw_reqs[r.id] = ({"__parsed__": r}, (), doc)
            order.append(r.id)
    for i, item in enumerate(data.get("requirements") or []):
        rid = item["id"]
        if rid in raw_reqs:
            base = raw_reqs[rid][0]
            merged = _merge_override(base, item)
            raw_reqs[rid] = (merged, ("requirements", i), doc)
        else:
            raw_reqs[rid] = (dict(item), ("requirements", i), doc)
            order.append(rid)

    requirements = []
    for rid in order:
        raw, where, rdoc = raw_reqs[rid]
        if raw.get("disabled"):
            continue
        if "__parsed__" in raw:
            requirements.append(raw["__parsed__"])
        else:
            requirements.append(_build_requirement(raw, where, rdoc, data["id"], known_sources))
    if not requirements:
        raise doc.error(("requirements",), "a profile needs at least one requirement")

    chain = [me] + (parent.chain if parent else [])
    return Profile(
        id=data["id"], version=str(data["version"]), title=data["title"],
        description=str(data.get("description", "")).strip(), requirements=requirements,
        sources={**(parent.sources if parent else {}), **own_sources},
        topology=data.get("topology") or (parent.topology if parent else None),
        path=display, sha256=_chain_digest(chain), chain=chain,
    )


def _chain_digest(chain: list[ProfileFile]) -> str:
    if len(chain) == 1:
        return chain[0].sha256
    return hashlib.sha256("".join(c.sha256 for c in chain).encode()).hexdigest()


def _check_duplicate_ids(doc: YamlDoc) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(doc.data.get("requirements") or []):
        rid = item["id"]
        if rid in seen:
            raise doc.error(("requirements", i, "id"),
                            f'duplicate requirement id "{rid}" (first at line {doc.line(("requirements", seen[rid]))})')
        seen[rid] = i


def _merge_override(base: dict, override: dict) -> dict:
    """A child's requirement with a parent's id replaces the fields it names; params merge."""
    if "__parsed__" in base:
        r: Requirement = base["__parsed__"]
        base = {"id": r.id, "title": r.title, "level": r.level, "check": r.check,
                "applies_to": list(r.applies_to), "params": dict(r.raw_params),
                "expect": r.expect.text, "rationale": r.rationale, "source": r.source,
                "__cites__": r.cites, "__basis__": r.basis}
        if r.quorum is not None:
            base["sites"] = f"{r.quorum * 100:g}%"
        if r.sample is not None:
            base["sample"] = r.sample.raw
            base["confidence"] = f"{r.sample.confidence * 100:g}%"
    merged = {**base, **override}
    if "params" in base and "params" in override and override["params"] is not None:
        merged["params"] = {**base["params"], **override["params"]}
    return merged


def _build_requirement(raw: dict, where: tuple, doc: YamlDoc, profile_id: str,
                       known_sources: dict[str, Source] | None) -> Requirement:
    def err(key: str | None, message: str) -> ConfigError:
        return doc.error(where + ((key,) if key else ()), message)

    for key in ("title", "level", "check", "expect"):
        if key not in raw:
            raise err(None, f'missing required key "{key}"')
    check = raw["check"]
    spec = catalog.get(check)
    if spec is None and not catalog.is_custom(check):
        raise err("check", catalog.unknown_check_message(check))

    raw_params = dict(raw.get("params") or {})
    params = _validate_params(raw_params, spec, where, doc)

    try:
        expectation = E.parse(raw["expect"])
        E.check_dimensions(expectation, spec.metrics if spec else {}, check, open_metrics=spec is None)
    except (E.ExpectError, UnitError) as exc:
        raise err("expect", str(exc)) from None

    applies = raw.get("applies_to", [])
    applies = [applies] if isinstance(applies, str) else list(applies)
    quorum = None
    if "sites" in raw:
        quorum = float(raw["sites"].strip().rstrip("%")) / 100.0
        if not 0 < quorum <= 1:
            raise err("sites", "a quorum is a share of sites between 0 % (excluded) and 100 %")
    sample = None
    if "confidence" in raw and "sample" not in raw:
        raise err("confidence", 'a confidence goes with a sample (sample: "10%" or a number of sites)')
    if "sample" in raw:
        if quorum is None:
            raise err("sample", 'a sample needs a fleet quorum to judge: add sites: "N%" (the share of the '
                                "fleet that must pass)")
        try:
            sample = parse_sampling(raw["sample"], raw.get("confidence"))
        except SamplingError as exc:
            raise err(exc.field, str(exc)) from None
    cites, basis = _sourcing(raw, where, doc, known_sources)
    req = Requirement(
        id=raw["id"], title=raw["title"], level=raw["level"], check=check, applies_to=applies,
        params=params, expect=expectation, rationale=str(raw.get("rationale", "")).strip(),
        source=str(raw.get("source", "")).strip(), cites=cites, basis=basis, quorum=quorum, sample=sample,
        profile=profile_id,
        origin=f"{doc.source}:{doc.line(where) or '?'}", raw_params=raw_params,
    )
    return req


def _sourcing(raw: dict, where: tuple, doc: YamlDoc,
              known: dict[str, Source] | None) -> tuple[list[Citation], Basis]:
    """The requirement's citations (each key known, unless `known` is None) and basis; an inherited
    one's come parsed."""
    if "cites" in raw:
        cites = [parse_citation(text) if known is None else check_citation(doc, where + ("cites", i), text, known)
                 for i, text in enumerate(raw["cites"])]
    else:
        cites = list(raw.get("__cites__") or [])
    basis = parse_basis(raw["basis"]) if "basis" in raw else raw.get("__basis__") or UNSTATED
    if basis.kind != "assumed" and basis is not UNSTATED and not cites:
        raise doc.error(where + ("basis",), f"a basis of {basis.kind} needs the source: add cites")
    return cites, basis


_KIND_CHECKS = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
               "a finite number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "dict": (lambda v: isinstance(v, dict), "a mapping"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "any": (lambda v: True, "anything"),
}
def parse_duration(value: object) -> float:
    """'5 s', '250 ms', '2 min' or a bare number of seconds -> seconds (a bare number in quotes is
    refused: "5" in a YAML file is as likely minutes as seconds)."""
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        raise ValueError(f'{value!r} needs a unit, e.g. "5 s" or "250 ms"')
    return parse_quantity(value, "time", "s", example='"5 s" or "250 ms"', name="a duration")


def _validate_params(raw: dict, spec: catalog.CheckSpec | None, where: tuple, doc: YamlDoc) -> dict:
    if spec is None:  # custom check: anything goes
        return dict(raw)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        p = spec.params.get(name)
        path = where + ("params", name)
        if p is None:
            known = ", ".join(sorted(spec.params)) or "none"
            raise doc.error(path, f'check {spec.name} has no param "{name}"'
                                  f"{did_you_mean(name, spec.params)} (known: {known})")
        if p.kind == "duration":
            try:
                out[name] = parse_duration(value)
            except ValueError as exc:
                raise doc.error(path, str(exc)) from None
            continue
        ok, label = _KIND_CHECKS[p.kind]
        if value is not None and not ok(value):
            raise doc.error(path, f"expected {label}, got {type(value).__name__} {value!r}")
        if isinstance(p.items, catalog.ChoiceItems) and isinstance(value, str):  # a single choice
            problem = p.items.problem(value)
            if problem:
                raise doc.error(path, problem)
        if p.items is not None and isinstance(value, list):
            for i, item in enumerate(value):
                problem = p.items.problem(item)
                if problem:
                    raise doc.error(path + (i,), problem)
        out[name] = value
    for name, p in spec.params.items():
        if name in out:
            continue
        if p.required:
            raise doc.error(where + ("params",), f'check {spec.name} needs param "{name}": {p.doc}')
        out[name] = parse_duration(p.default) if p.kind == "duration" and p.default is not None else p.default
    return out
