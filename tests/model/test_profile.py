"""Profile loading: the shipped profiles, inheritance, overrides, params and their defaults, quorum."""

import textwrap

import pytest

from conformance.model import catalog
from conformance.model.errors import ConfigError
from conformance.model.profile import list_profiles, load_profile, parse_duration


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_edge_baseline_loads():
    p = load_profile("edge-baseline")
    assert p.id == "edge-baseline" and p.version and p.title
    ids = [r.id for r in p.requirements]
    assert ids[:3] == ["BASE-FUN-01", "BASE-FUN-02", "BASE-FUN-03"]
    for r in p.requirements:
        assert r.level in ("must", "should", "may")
        assert catalog.get(r.check) is not None, r.check
        assert r.cites and r.basis.kind in ("source", "derived", "assumed"), f"{r.id} names no source or basis"
        assert r.rationale, f"{r.id} has no rationale"
        assert r.profile == "edge-baseline"
    assert len(p.sha256) == 64
    assert p.summary()["extends"] == []


def test_every_shipped_profile_loads():
    paths = list_profiles()
    assert any(path.stem == "edge-baseline" for path in paths)
    for path in paths:
        assert load_profile(str(path)).requirements


def test_shipped_profile_by_name_and_by_path_are_the_same():
    by_name = load_profile("edge-baseline")
    by_path = load_profile(str([p for p in list_profiles() if p.stem == "edge-baseline"][0]))
    assert by_name.sha256 == by_path.sha256


def test_unknown_profile_name_suggests():
    with pytest.raises(ConfigError, match=r'unknown profile "edge-basline" \(did you mean "edge-baseline"\?\)'):
        load_profile("edge-basline")


def test_param_defaults_and_durations(tmp_path):
    p = load_profile(str(write(tmp_path / "p.yaml", """\
        id: p
        version: 1
        title: P
        requirements:
          - id: R-1
            title: up
            level: must
            check: functional.http
            params: {path: /health, timeout: 250 ms}
            expect: status == 200
          - id: R-2
            title: port
            level: should
            check: functional.tcp
            expect: connected == true
        """)))
    r1, r2 = p.requirements
    assert r1.params["timeout"] == pytest.approx(0.25)
    assert r1.params["path"] == "/health"
    assert r1.params["endpoint"] == "api" and r1.params["method"] == "GET"  # defaults filled in
    assert r1.params["json"] is None
    assert r2.params == {"endpoint": "api", "port": None, "timeout": 5.0}
    assert r1.raw_params == {"path": "/health", "timeout": "250 ms"}
    assert p.version == "1"
    assert r1.applies_to == [] and r1.quorum is None
    assert r1.origin.endswith(":5")


@pytest.mark.parametrize(("text", "seconds"), [("5 s", 5.0), ("250 ms", 0.25), ("2 min", 120.0), ("1.5s", 1.5),
                                               ("300 us", 3e-4), (3, 3.0), (0.5, 0.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "5", "5 rps", "-1 s", -1, True, None, "5 parsecs"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_quorum_and_applies_to(tmp_path):
    p = load_profile(str(write(tmp_path / "p.yaml", """\
        id: p
        version: "1"
        title: P
        requirements:
          - id: R-1
            title: most stores up
            level: must
            check: functional.http
            applies_to: edge
            sites: "95%"
            expect: status == 200
          - id: R-2
            title: central and store-1
            level: may
            check: functional.http
            applies_to: [central, store-1]
            sites: " 50.5 % "
            expect: status == 200
        """)))
    r1, r2 = p.requirements
    assert r1.quorum == pytest.approx(0.95) and r1.applies_to == ["edge"]
    assert r2.quorum == pytest.approx(0.505) and r2.applies_to == ["central", "store-1"]


def test_custom_checks_accept_any_params_and_metrics(tmp_path):
    p = load_profile(str(write(tmp_path / "p.yaml", """\
        id: p
        version: "1"
        title: P
        requirements:
          - id: MY-01
            title: queue short
            level: must
            check: custom.queue_depth
            params: {queue: ingest, anything: [1, 2]}
            expect: depth <= 100 and wait <= 2 s
        """)))
    (r,) = p.requirements
    assert r.params == {"queue": "ingest", "anything": [1, 2]}
    assert r.suite == "custom" and r.metric_dimensions == {}


CHILD_BODY = """\
    requirements:
      - id: BASE-FUN-01
        params: {timeout: 1 s}
      - id: BASE-FUN-03
        disabled: true
      - id: CHILD-01
        title: extra
        level: should
        check: functional.tcp
        expect: connected == true
"""


def test_extends_by_name_overrides_by_id_merges_params_and_disables(tmp_path):
    base = load_profile("edge-baseline")
    child = load_profile(str(write(tmp_path / "child.yaml", "id: child\nversion: '2'\ntitle: Child\n"
                                   "extends: edge-baseline\n" + textwrap.dedent(CHILD_BODY))))
    ids = [r.id for r in child.requirements]
    assert "BASE-FUN-03" not in ids
    assert ids == [r.id for r in base.requirements if r.id != "BASE-FUN-03"] + ["CHILD-01"]
    over = child.requirement("BASE-FUN-01")
    orig = base.requirement("BASE-FUN-01")
    assert over.params["timeout"] == 1.0
    assert over.params["path"] == orig.params["path"] == "/health"  # merged, not replaced
    assert over.params["endpoint"] == "api"
    assert (over.title, over.level, over.check, over.expect.text) == (orig.title, orig.level, orig.check,
                                                                       orig.expect.text)
    assert over.origin.startswith("child.yaml") or "child.yaml" in over.origin
    # untouched inherited requirements are the parent's
    assert child.requirement("BASE-FUN-02").params == base.requirement("BASE-FUN-02").params
    assert [c.id for c in child.chain] == ["child", "edge-baseline"]
    assert child.summary()["extends"] == ["edge-baseline"]
    assert child.sha256 != base.sha256


def test_extends_by_relative_path(tmp_path, monkeypatch):
    write(tmp_path / "parents" / "parent.yaml", """\
        id: parent
        version: "1"
        title: Parent
        topology: retail
        requirements:
          - id: P-1
            title: up
            level: must
            check: functional.http
            params: {path: /health, method: HEAD}
            expect: status == 200
          - id: P-2
            title: port
            level: must
            check: functional.tcp
            expect: connected == true
        """)
    write(tmp_path / "team" / "child.yaml", """\
        id: child
        version: "1"
        title: Child
        extends: ../parents/parent.yaml
        requirements:
          - id: P-1
            level: should
            params: {path: /ready}
            expect: status == 204
          - id: P-2
            disabled: true
        """)
    monkeypatch.chdir(tmp_path / "parents")  # relative to the child file, not to the working directory
    child = load_profile(str(tmp_path / "team" / "child.yaml"))
    (r,) = child.requirements
    assert r.id == "P-1" and r.level == "should" and r.expect.text == "status == 204"
    assert r.params["path"] == "/ready" and r.params["method"] == "HEAD"
    assert child.topology == "retail"


def test_override_can_change_a_quorum_and_keep_it(tmp_path):
    write(tmp_path / "parent.yaml", """\
        id: parent
        version: "1"
        title: Parent
        requirements:
          - id: P-1
            title: up
            level: must
            check: functional.http
            sites: "95%"
            expect: status == 200
        """)
    write(tmp_path / "child.yaml", """\
        id: child
        version: "1"
        title: Child
        extends: parent.yaml
        requirements:
          - id: P-1
            title: up everywhere
        """)
    (r,) = load_profile(str(tmp_path / "child.yaml")).requirements
    assert r.title == "up everywhere" and r.quorum == pytest.approx(0.95)


def test_override_is_validated(tmp_path):
    path = write(tmp_path / "child.yaml", """\
        id: child
        version: "1"
        title: Child
        extends: edge-baseline
        requirements:
          - id: BASE-FUN-01
            expect: latency <= 20 rps
        """)
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    assert info.value.line == 7 and info.value.field == "requirements[0].expect"


def test_extends_cycle_rejected(tmp_path):
    body = "title: X\nrequirements:\n  - {id: R, title: t, level: must, check: functional.http, expect: status == 200}\n"
    write(tmp_path / "a.yaml", "id: a\nversion: '1'\nextends: b.yaml\n" + body)
    write(tmp_path / "b.yaml", "id: b\nversion: '1'\nextends: a.yaml\n" + body)
    with pytest.raises(ConfigError, match="cycle") as info:
        load_profile(str(tmp_path / "a.yaml"))
    assert info.value.field == "extends" and info.value.line == 3


def test_extends_missing_file_points_at_the_extends_line(tmp_path):
    path = write(tmp_path / "c.yaml", "id: c\nversion: '1'\ntitle: C\nextends: nope/parent.yaml\n"
                 "requirements:\n  - {id: R, title: t, level: must, check: functional.http, expect: status == 200}\n")
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    assert info.value.source.endswith("c.yaml") and info.value.line == 4 and info.value.field == "extends"


def test_all_requirements_disabled_is_empty(tmp_path):
    disabled = "".join(f"  - {{id: {r.id}, disabled: true}}\n" for r in load_profile("edge-baseline").requirements)
    path = write(tmp_path / "c.yaml", 'id: c\nversion: "1"\ntitle: C\nextends: edge-baseline\nrequirements:\n'
                 + disabled)
    with pytest.raises(ConfigError, match="at least one requirement"):
        load_profile(str(path))


def test_errors_are_located(tmp_path):
    path = write(tmp_path / "bad.yaml", """\
        id: bad
        version: "1"
        title: Bad
        requirements:
          - id: R-1
            title: up
            level: must
            check: functional.http
            expect: status == 200
          - id: R-2
            title: prompt
            level: must
            check: functional.http
            expect: latency <= 20 msec
        """)
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    err = info.value
    assert (err.line, err.field) == (14, "requirements[1].expect")
    assert str(err).endswith(':14: requirements[1].expect: unknown unit "msec" (did you mean "ms"?)')
    assert "\n" not in str(err)


@pytest.mark.parametrize("param, value, line, message", [
    ("delays_ms", '[5, "10 msec", 20]', 10, 'delays_ms[1]: unknown unit "msec" in \'10 msec\' (did you mean "ms"?)'),
    ("losses", '["5 %", "150 %"]', 10, "losses[1]: '150 %' is out of range (above 100 %)"),
    ("bandwidths", "[true]", 10, "bandwidths[0]: expected a bitrate such as \"10 Mbit/s\", got True"),
    ("delays_ms", "[5, " + "9" * 400 + "]", 10, "delays_ms[1]: 9999999999999999999999999999999999999... is out "
                                                  "of range"),
    ("delays_ms", "[.inf]", 10, "delays_ms[0]: inf is not a finite number"),
    ("losses", '["nan %"]', 10, "losses[0]: expected a ratio such as \"0.1 %\", got 'nan %'"),
    ("operations", "[pos, contnet]", 10, "operations[1]: 'contnet' is not one of pos, content "
                                         '(did you mean "content"?)'),
])
def test_list_params_are_validated_element_by_element_on_load(tmp_path, param, value, line, message):
    path = write(tmp_path / "sweep.yaml", f"""\
        id: sweep
        version: "1"
        title: Sweep
        requirements:
          - id: R-1
            title: degraded
            level: should
            check: resilience.degraded
            params:
              {param}: {value}
            expect: min_success_ratio >= 90 %
        """)
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    assert info.value.line == line
    assert f"requirements[0].params.{message}" in str(info.value)


def test_good_list_params_load():
    profile = load_profile("iot")  # sweeps delays, losses and bandwidths
    degraded = [r for r in profile.requirements if r.check == "resilience.degraded"]
    assert degraded and all(isinstance(r.params["delays_ms"], list) for r in degraded)
