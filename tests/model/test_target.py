"""Target files: sites, endpoints, testinfra hosts, credentials as ${ENV} references, hooks, uplinks."""

import json
import textwrap

import pytest

from conformance.model.errors import ConfigError
from conformance.model.target import expand_env, is_emulated_ref, load_target

GOOD = """\
    name: lab
    description: two stores and a central site
    sites:
      - name: central
        role: central
        endpoints: {api: "http://127.0.0.1:8080", mqtt: "tcp://127.0.0.1:1883"}
        hosts: ["local://", "ssh://ops@10.0.0.1", "docker://central-db"]
      - name: store-1
        role: edge
        uplink: central
        endpoints: {api: "https://store-1.example.test:8443/base"}
        credentials: {api_token: "${EDGE_TEST_STORE1_TOKEN}"}
        hooks:
          partition: {command: "tc qdisc add dev eth0 root netem loss 100%", timeout: 30 s}
          heal: {command: [sh, -c, "tc qdisc del dev eth0 root"]}
        labels: {rack: r1}
"""


def write(tmp_path, text, name="t.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_load_good_target(tmp_path):
    t = load_target(write(tmp_path, GOOD))
    assert t.name == "lab" and t.kind == "real"
    central, store = t.sites
    assert central.endpoint("api") == "http://127.0.0.1:8080"
    assert central.hosts == ["local://", "ssh://ops@10.0.0.1", "docker://central-db"]
    assert store.uplink == "central" and store.role == "edge"
    assert store.credentials == {"api_token": "EDGE_TEST_STORE1_TOKEN"}
    assert store.hooks["partition"].timeout == 30.0
    assert store.hooks["heal"].timeout == 60.0  # default
    assert store.hooks["heal"].command == ["sh", "-c", "tc qdisc del dev eth0 root"]
    assert t.site("store-1") is store
    assert {"127.0.0.1", "store-1.example.test"} <= t.allowed_hosts()


def test_matches_by_role_and_name(tmp_path):
    central, store = load_target(write(tmp_path, GOOD)).sites
    assert store.matches(["edge"]) and store.matches(["store-1"]) and store.matches([])
    assert not central.matches(["edge"]) and central.matches(["central", "edge"])


def test_unknown_endpoint_and_site_suggest(tmp_path):
    t = load_target(write(tmp_path, GOOD))
    with pytest.raises(LookupError, match=r'has no endpoint "apii" \(did you mean "api"\?\)'):
        t.site("central").endpoint("apii")
    with pytest.raises(LookupError, match=r'did you mean "store-1"'):
        t.site("store-2")


def test_credentials_resolve_from_the_environment_only_when_needed(tmp_path, monkeypatch):
    t = load_target(write(tmp_path, GOOD))
    store = t.site("store-1")
    monkeypatch.delenv("EDGE_TEST_STORE1_TOKEN", raising=False)
    with pytest.raises(LookupError, match="EDGE_TEST_STORE1_TOKEN"):
        store.credential("api_token")
    monkeypatch.setenv("EDGE_TEST_STORE1_TOKEN", "tok-XYZZY-123")
    assert store.credential("api_token") == "tok-XYZZY-123"


def test_redacted_never_contains_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_TEST_STORE1_TOKEN", "tok-XYZZY-123")
    t = load_target(write(tmp_path, GOOD))
    assert t.site("store-1").credential("api_token") == "tok-XYZZY-123"
    red = t.redacted()
    text = json.dumps(red)
    assert "tok-XYZZY-123" not in text
    store = next(s for s in red["sites"] if s["name"] == "store-1")
    assert store["credentials"] == {"api_token": "${EDGE_TEST_STORE1_TOKEN}"}
    assert store["hooks"] == ["heal", "partition"]
    assert red["kind"] == "real" and red["name"] == "lab"


def test_expand_env(monkeypatch):
    monkeypatch.setenv("EDGE_TEST_A", "alpha")
    assert expand_env("Bearer ${EDGE_TEST_A}!") == "Bearer alpha!"
    monkeypatch.delenv("EDGE_TEST_B", raising=False)
    with pytest.raises(LookupError, match="EDGE_TEST_B"):
        expand_env("${EDGE_TEST_B}")


def test_emulated_refs():
    assert is_emulated_ref("emulated") and is_emulated_ref("emulated:retail")
    assert not is_emulated_ref("emulated.yaml") and not is_emulated_ref("lab.yaml")


SITE = "name: lab\nsites:\n  - name: s1\n    role: edge\n"


@pytest.mark.parametrize(
    ("extra", "line", "field", "message"),
    [
        ('    hosts: ["sssh://ops@h"]\n', 5, "sites[0].hosts[0]", 'unknown testinfra backend "sssh" (did you mean "ssh"?)'),
        ('    hosts: ["10.0.0.5"]\n', 5, "sites[0].hosts[0]", "is not a testinfra host spec"),
        ('    hosts: ["ssh://ops:pw@h"]\n', 5, "sites[0].hosts[0]", "no passwords in host specs"),
        ('    credentials: {token: "plain"}\n', 5, "sites[0].credentials.token", "never literal secrets"),
        ('    credentials: {token: "${A}${B}"}\n', 5, "sites[0].credentials.token", "never literal secrets"),
        ('    credentials: {token: "Bearer ${A}"}\n', 5, "sites[0].credentials.token", "never literal secrets"),
        ('    uplink: nowhere\n', 5, "sites[0].uplink", 'no site named "nowhere"'),
        ('    endpoints: {api: "localhost:8080"}\n', 5, "sites[0].endpoints.api", "is not a URL with one of the schemes"),
        ('    endpoints: {api: "http://"}\n', 5, "sites[0].endpoints.api", "has no host"),
        ('    endpoints: {api: "http://h:99999"}\n', 5, "sites[0].endpoints.api", "invalid port"),
        ('    endpoints: {api: "udp://h"}\n', 5, "sites[0].endpoints.api", "needs a port"),
        ('    endpoints: {api: "http://u:pw@h"}\n', 5, "sites[0].endpoints.api", "no passwords in URLs"),
        ('    hooks: {kill: {command: x, timeout: 0}}\n', 5, "sites[0].hooks.kill.timeout", "must be positive"),
        ('    hooks: {kill: {command: x, timeout: later}}\n', 5, "sites[0].hooks.kill.timeout", "expected a duration"),
        ('    hooks: {reboot: {command: x}}\n', 5, "sites[0].hooks.reboot", 'unknown key "reboot"'),
        ('    hooks: {kill: {}}\n', 5, "sites[0].hooks.kill", 'missing required key "command"'),
    ],
)
def test_target_errors(tmp_path, extra, line, field, message):
    with pytest.raises(ConfigError) as info:
        load_target(write(tmp_path, SITE + extra))
    err = info.value
    assert (err.line, err.field) == (line, field), str(err)
    assert message in err.message
    assert "pw" not in str(err) and "plain" not in str(err)


def test_every_real_testinfra_backend_is_accepted(tmp_path):
    from testinfra.backend import BACKENDS

    hosts = ", ".join(f'"{b}://x"' for b in BACKENDS)
    t = load_target(write(tmp_path, SITE + f"    hosts: [{hosts}]\n"))
    assert len(t.sites[0].hosts) == len(BACKENDS)


def test_duplicate_sites_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match='duplicate site name "s1"'):
        load_target(write(tmp_path, SITE + "  - {name: s1, role: edge}\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_target(tmp_path / "absent.yaml")


def test_site_selectors_must_name_a_site_or_role(tmp_path):
    from conformance.model.target import check_site_selectors

    t = load_target(write(tmp_path, GOOD))
    check_site_selectors(t, ["central", "edge", "store-1"], "--site")
    with pytest.raises(ConfigError) as info:
        check_site_selectors(t, ["edge", "stor-1"], "--site")
    assert str(info.value).startswith('--site: no site or role "stor-1" in target lab (did you mean "store-1"?)')
