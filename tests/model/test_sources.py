"""The bibliography (profiles/sources.yaml) and how requirements cite it: keys checked, places required,
a basis for every threshold, the registry rendered to docs/sources.md, and nothing pointing outside the
repository."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance.model.coverage import coverage, render, shipped_implementations
from conformance.model.errors import ConfigError
from conformance.model.profile import list_profiles, load_profile
from conformance.model.sources import Basis, basis_shares, load_registry_file, registry, render_markdown

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def profile(tmp_path: Path, fields: str = "", extra: str = "") -> Path:
    """A profile with one requirement R-1 and `fields` (YAML lines, any indent) added to it."""
    more = textwrap.indent(textwrap.dedent(fields).strip(), "    ") + "\n" if fields.strip() else ""
    return write(tmp_path / "p.yaml", f"id: mine\nversion: '1'\ntitle: t\n{extra}requirements:\n"
                                      "  - id: R-1\n    title: up\n    level: must\n    check: functional.http\n"
                                      f"    expect: status == 200\n{more}")


# -------------------------------------------------------------------------------------- registry


def test_every_registry_source_has_a_full_citation():
    sources = registry()
    assert len(sources) >= 20
    for key, s in sources.items():
        assert s.title and s.publisher and s.year, key
        text = s.citation()
        assert s.title in text and str(s.year) in text and s.publisher in text, text
        if s.url:
            assert s.url.startswith("https://") and text.endswith(s.url), key


def test_a_registry_key_listed_twice_is_refused(tmp_path):
    path = write(tmp_path / "sources.yaml", """\
        sources:
          - {key: A, title: t, publisher: p, year: 2020}
          - {key: A, title: u, publisher: p, year: 2021}
        """)
    with pytest.raises(ConfigError) as e:
        load_registry_file(path)
    assert e.value.line == 3 and 'source "A" is listed twice' in str(e.value)


def test_a_registry_entry_without_publisher_is_refused(tmp_path):
    path = write(tmp_path / "sources.yaml", "sources:\n  - {key: A, title: t, year: 2020}\n")
    with pytest.raises(ConfigError, match='missing required key "publisher"'):
        load_registry_file(path)


# ------------------------------------------------------------------------------ citing and basis


def test_citation_and_basis_are_parsed(tmp_path):
    p = load_profile(str(profile(tmp_path, """\
          cites: ["OPNFV-EC §Edge services table: CDN end-to-end delay 10 ms"]
          basis: {derived: "10 ms judged at p90"}
        """)))
    r = p.requirements[0]
    assert [(c.key, c.at) for c in r.cites] == [("OPNFV-EC", "§Edge services table: CDN end-to-end delay 10 ms")]
    assert r.basis == Basis("derived", "10 ms judged at p90")
    assert r.source_text == "OPNFV-EC §Edge services table: CDN end-to-end delay 10 ms; derived: 10 ms judged at p90"
    cited = p.summary()["sources"]
    assert [s["key"] for s in cited] == ["OPNFV-EC"] and "citation" in cited[0]


def test_an_unknown_key_is_refused_with_its_line(tmp_path):
    path = profile(tmp_path, """\
          cites: ["OPNFV-XX §1: something"]
          basis: source
        """)
    with pytest.raises(ConfigError) as e:
        load_profile(str(path))
    assert e.value.line == 10 and e.value.field == "requirements[0].cites[0]"
    assert 'cites unknown source "OPNFV-XX"' in str(e.value)


def test_a_citation_without_a_place_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="a source key, then the exact place"):
        load_profile(str(profile(tmp_path, 'cites: ["OSF-2018 "]\nbasis: source\n')))


@pytest.mark.parametrize("basis, message", [
    ("{derived: ''}", 'expected "source", {derived: "the arithmetic"}'),
    ("{guessed: x}", 'expected "source", {derived: "the arithmetic"} or {assumed: "the reason"}'),
    ("{assumed: a, derived: b}", 'expected "source"'),
    ("sourced", 'expected "source"'),
])
def test_a_bad_basis_is_refused(tmp_path, basis, message):
    path = profile(tmp_path, f'cites: ["OSF-2018 §Challenges: x"]\nbasis: {basis}\n')
    with pytest.raises(ConfigError) as e:
        load_profile(str(path))
    assert message in str(e.value) and e.value.line is not None


def test_a_sourced_basis_needs_a_citation(tmp_path):
    with pytest.raises(ConfigError, match="needs the source: add cites"):
        load_profile(str(profile(tmp_path, "basis: source\n")))


def test_an_assumption_needs_no_citation(tmp_path):
    r = load_profile(str(profile(tmp_path, "basis: {assumed: our own choice}\n"))).requirements[0]
    assert r.basis.kind == "assumed" and not r.cites


def test_a_profile_may_add_its_own_sources_but_not_redefine_shipped_ones(tmp_path):
    own = "sources:\n  - {key: ACME-SPEC, title: Acme box spec, publisher: Acme, year: 2026}\n"
    p = load_profile(str(profile(tmp_path, 'cites: ["ACME-SPEC §3: 5 ms"]\nbasis: source\n',
                                 extra=own)))
    assert p.cited_sources()["ACME-SPEC"].citation() == 'Acme, "Acme box spec", 2026.'
    clash = "sources:\n  - {key: OSF-2018, title: mine}\n"
    with pytest.raises(ConfigError, match='source "OSF-2018" is already in profiles/sources.yaml'):
        load_profile(str(profile(tmp_path, extra=clash)))


def test_an_extending_profile_can_cite_its_parents_own_sources(tmp_path):
    parent = profile(tmp_path, extra="sources:\n  - {key: ACME-SPEC, title: Acme box spec}\n")
    parent.rename(tmp_path / "parent.yaml")
    child = write(tmp_path / "child.yaml", """\
        id: child
        version: '1'
        title: c
        extends: parent.yaml
        requirements:
          - id: R-1
            cites: ["ACME-SPEC §2: up"]
            basis: source
        """)
    r = load_profile(str(child)).requirements[0]
    assert r.cites[0].key == "ACME-SPEC" and r.basis.kind == "source"


def test_an_override_keeps_the_parents_citations_unless_it_gives_its_own(tmp_path):
    write(tmp_path / "parent.yaml", """\
        id: parent
        version: '1'
        title: p
        requirements:
          - id: R-1
            title: up
            level: must
            check: functional.http
            expect: status == 200
            cites: ["OSF-2018 §Challenges: x"]
            basis: source
          - id: R-2
            title: up
            level: must
            check: functional.http
            expect: status == 200
            cites: ["OSF-2018 §Challenges: x"]
            basis: source
        """)
    child = write(tmp_path / "child.yaml", """\
        id: child
        version: '1'
        title: c
        extends: parent.yaml
        requirements:
          - {id: R-1, expect: status == 204}
          - {id: R-2, expect: status == 204, basis: {assumed: "204 is ours"}}
        """)
    r1, r2 = load_profile(str(child)).requirements
    assert r1.basis.kind == "source" and r1.cites[0].key == "OSF-2018"
    assert r2.basis == Basis("assumed", "204 is ours") and r2.cites[0].key == "OSF-2018"


def test_a_legacy_free_text_source_still_loads_with_its_basis_unstated(tmp_path):
    r = load_profile(str(profile(tmp_path, "source: 'our lab notes'\n"))).requirements[0]
    assert r.basis.kind == "unstated" and r.source_text == "our lab notes" and not r.cites


# --------------------------------------------------------------------------- the shipped profiles


def test_every_shipped_requirement_cites_the_registry_and_states_its_basis():
    known = registry()
    for path in list_profiles():
        p = load_profile(str(path))
        for r in p.requirements:
            assert r.cites, f"{p.id} {r.id}: no citation"
            assert all(c.key in known for c in r.cites), f"{p.id} {r.id}"
            assert r.basis.kind in ("source", "derived", "assumed"), f"{p.id} {r.id}: basis {r.basis.kind}"
            assert not r.source, f"{p.id} {r.id}: free-text source left"


def test_coverage_prints_the_share_of_each_basis_per_profile():
    loaded = [load_profile("retail"), load_profile("edge-baseline")]
    text = render(coverage(loaded, shipped_implementations()), loaded)
    kinds = [r.basis.kind for r in loaded[0].requirements]
    assert f"  thresholds: {basis_shares(kinds)}" in text
    assert re.search(r"thresholds: \d+ from a source \(\d+ %\), \d+ derived \(\d+ %\), \d+ assumed \(\d+ %\)", text)


def test_basis_shares_add_up():
    assert basis_shares(["source", "derived", "derived", "assumed"]) == \
        "1 from a source (25 %), 2 derived (50 %), 1 assumed (25 %)"
    assert "basis unstated (50 %)" in basis_shares(["unstated", "assumed"])


def test_docs_sources_md_is_the_rendered_registry():
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "profiles", "sources", "--markdown"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout == (ROOT / "docs" / "sources.md").read_text(encoding="utf-8"), \
        "docs/sources.md is stale: edge-conformance profiles sources --markdown > docs/sources.md"
    for key in registry():
        assert f"## {key}\n" in out.stdout


def test_render_markdown_lists_who_cites_each_source():
    text = render_markdown({k: v for k, v in registry().items() if k == "OSF-2018"}, {"OSF-2018": ["retail RTL-RES-01"]})
    assert "## OSF-2018" in text and "Cited by: retail RTL-RES-01." in text


# Paths outside the repository that earlier drafts pointed to, and the name of the digest they used.
OUTSIDE = re.compile(r"\.\./shared|/work/shared|\"shared\"\W+\"reference\"|edge-requirements-sources|EC-SOURCES")


def test_nothing_in_the_project_points_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if name == "tests/model/test_sources.py" or not path.is_file() or path.suffix in (".png", ".gz"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not offenders, offenders[:20]


def test_verify_takes_citations_as_written(tmp_path):
    path = profile(tmp_path, 'cites: ["GONE-KEY §1: a key this installation does not know"]\nbasis: source\n')
    with pytest.raises(ConfigError, match='cites unknown source "GONE-KEY"'):
        load_profile(str(path))
    r = load_profile(str(path), check_citations=False).requirements[0]
    assert r.cites[0].key == "GONE-KEY" and r.cites[0].at == "§1: a key this installation does not know"


def test_a_child_cannot_redefine_a_source_its_parent_defined(tmp_path):
    parent = profile(tmp_path, extra="sources:\n  - {key: ACME-SPEC, title: Acme box spec}\n")
    parent.rename(tmp_path / "parent.yaml")
    child = write(tmp_path / "child.yaml", """\
        id: child
        version: '1'
        title: c
        extends: parent.yaml
        sources:
          - {key: ACME-SPEC, title: another Acme spec}
        requirements: []
        """)
    with pytest.raises(ConfigError, match='source "ACME-SPEC" is already defined by a profile this one extends'):
        load_profile(str(child))


def test_the_bibliography_is_not_a_profile():
    with pytest.raises(ConfigError, match="is the bibliography the profiles cite, not a profile"):
        load_profile("sources")


def test_a_citation_may_be_separated_by_any_whitespace(tmp_path):
    r = load_profile(str(profile(tmp_path, 'cites: ["OSF-2018\\t§Challenges: x"]\nbasis: source\n'))).requirements[0]
    assert (r.cites[0].key, r.cites[0].at) == ("OSF-2018", "§Challenges: x")
