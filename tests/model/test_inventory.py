"""Ansible inventories as targets: the mapping (groups to roles, endpoint and uplink variables, several hosts
of one site) from ansible-inventory's JSON, every problem one line located in the inventory's text; and,
when ansible-core is installed, the real `ansible-inventory` on INI and YAML files."""

import shutil
import textwrap

import pytest

from conformance.model.errors import ConfigError
from conformance.model.inventory import groups_of, target_from_inventory

TEXT = """\
[edge]
store-1 edge_conformance_endpoint_api=http://10.0.1.5:8080
store-2

[central]
hq edge_conformance_endpoints='{"api": "https://10.0.0.2:8443"}'

[shops:children]
edge
"""


def listing(hostvars: dict, groups: dict) -> dict:
    data = {"_meta": {"hostvars": hostvars}, "all": {"children": ["ungrouped", *groups]}}
    for name, members in groups.items():
        data[name] = members
    return data


def build(data, text=TEXT, source="/inv/hosts.ini"):
    return target_from_inventory(data, source, text, source)


def test_groups_map_to_roles_and_variables_to_endpoints():
    data = listing(
        {"store-1": {"edge_conformance_endpoint_api": "http://10.0.1.5:8080", "edge_conformance_uplink": "hq"},
         "store-2": {"edge_conformance_endpoints": {"api": "http://10.0.2.5:8080"}},
         "hq": {"edge_conformance_endpoints": {"api": "https://10.0.0.2:8443"}, "edge_conformance_name": "lab"}},
        {"edge": {"hosts": ["store-1", "store-2"]}, "central": {"hosts": ["hq"]},
         "shops": {"children": ["edge"]}})
    t = build(data)
    assert t.name == "lab" and t.inventory == "/inv/hosts.ini"
    assert [(s.name, s.role) for s in t.sites] == [("store-1", "edge"), ("store-2", "edge"), ("hq", "central")]
    s1 = t.site("store-1")
    assert s1.endpoints == {"api": "http://10.0.1.5:8080"} and s1.uplink == "hq"
    assert s1.hosts == ["ansible://store-1?ansible_inventory=/inv/hosts.ini"]
    assert t.redacted()["inventory"] == "/inv/hosts.ini"
    assert groups_of(data, "store-1") == ["all", "edge", "shops"]


def test_role_variable_and_several_hosts_of_one_site():
    data = listing(
        {"gw": {"edge_conformance_role": "edge", "edge_conformance_site": "store-9"},
         "db": {"edge_conformance_role": "edge", "edge_conformance_site": "store-9"}},
        {"stores": {"hosts": ["gw", "db"]}})
    (site,) = build(data, "[stores]\ngw\ndb\n").sites
    assert site.name == "store-9" and site.role == "edge"
    assert [h.split("?")[0] for h in site.hosts] == ["ansible://gw", "ansible://db"]


@pytest.mark.parametrize("hostvars, groups, text, expected", [
    ({"x": {}}, {"web": {"hosts": ["x"]}}, "[web]\nx\n",
     "/inv/hosts.ini:2: x: no role: it is in no group named central, regional or edge and has no "
     "edge_conformance_role (put it in one, or set edge_conformance_role)"),
    ({"x": {}}, {"edge": {"hosts": ["x"]}, "central": {"hosts": ["x"]}}, "[edge]\nx\n[central]\nx\n",
     "/inv/hosts.ini:2: x: in the role groups central and edge: one role per site (set edge_conformance_role)"),
    ({"s": {"edge_conformance_endpoint_api": "10.0.0.5:8080"}}, {"edge": {"hosts": ["s"]}},
     "[edge]\ns edge_conformance_endpoint_api=10.0.0.5:8080\n",
     '/inv/hosts.ini:2: s: edge_conformance_endpoint_api: "10.0.0.5:8080" is not a URL with one of the schemes'),
    ({"s": {"edge_conformance_endpoints": {"api": "ftp://x"}}}, {"edge": {"hosts": ["s"]}},
     "[edge]\ns\n[edge:vars]\nedge_conformance_endpoints={'api': 'ftp://x'}\n",
     '/inv/hosts.ini:4: s: edge_conformance_endpoints.api: "ftp://x" is not a URL'),
    ({"s": {"edge_conformance_uplink": "nowhere"}}, {"edge": {"hosts": ["s"]}}, "[edge]\ns\n",
     '/inv/hosts.ini:2: s: edge_conformance_uplink: no site named "nowhere"'),
    ({"s": {"ansible_password": "hunter2"}}, {"edge": {"hosts": ["s"]}}, "[edge]\ns ansible_password=hunter2\n",
     "/inv/hosts.ini:2: s: ansible_password: no connection passwords"),
    ({"s": {"edge_conformance_endpoint": "http://x"}}, {"edge": {"hosts": ["s"]}}, "[edge]\ns\n",
     "/inv/hosts.ini:2: s: edge_conformance_endpoint: unknown variable"),
    ({"s": {"edge_conformance_credentials": {"token": "literal-secret"}}}, {"edge": {"hosts": ["s"]}},
     "[edge]\ns\n", "/inv/hosts.ini:2: s: edge_conformance_credentials.token: credentials must be ${ENV_VAR}"),
    ({"a": {"edge_conformance_site": "s", "edge_conformance_role": "edge"},
      "b": {"edge_conformance_site": "s", "edge_conformance_role": "central"}}, {"x": {"hosts": ["a", "b"]}},
     "[x]\na\nb\n", "/inv/hosts.ini:3: b: site s is in role edge (host a) and in role central here"),
])
def test_inventory_errors_are_one_located_line(hostvars, groups, text, expected):
    with pytest.raises(ConfigError) as exc:
        build(listing(hostvars, groups), text)
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith(expected), str(exc.value)
    assert "hunter2" not in str(exc.value) and "literal-secret" not in str(exc.value)


def test_an_empty_inventory_is_refused():
    with pytest.raises(ConfigError, match="no hosts"):
        build({"_meta": {"hostvars": {}}, "all": {"children": ["ungrouped"]}, "ungrouped": {}}, "")


needs_ansible = pytest.mark.skipif(shutil.which("ansible-inventory") is None,
                                   reason="ansible-core is not installed (pip install -e '.[test]')")


@needs_ansible
def test_real_ansible_inventory_ini_and_yaml(tmp_path):
    from conformance.engine.inventory import load_inventory

    ini = tmp_path / "hosts.ini"
    ini.write_text(TEXT)
    t = load_inventory(ini)
    assert [(s.name, s.role) for s in t.sites] == [("store-1", "edge"), ("store-2", "edge"), ("hq", "central")]
    assert t.site("hq").endpoints == {"api": "https://10.0.0.2:8443"}
    yml = tmp_path / "hosts.yml"
    yml.write_text(textwrap.dedent("""\
        all:
          vars: {edge_conformance_name: yaml-lab}
          children:
            stores:
              vars: {edge_conformance_role: edge, edge_conformance_uplink: hq}
              hosts:
                store-1: {edge_conformance_endpoint_api: "http://10.0.1.5:8080"}
            central:
              hosts: {hq: {}}
        """))
    t = load_inventory(yml)
    assert t.name == "yaml-lab"
    assert [(s.name, s.role, s.uplink) for s in t.sites] == [("store-1", "edge", "hq"), ("hq", "central", None)]


@needs_ansible
def test_real_ansible_inventory_errors(tmp_path):
    from conformance.engine.inventory import load_inventory

    bad = tmp_path / "bad.ini"
    bad.write_text("[edge]\nstore-1 ansible_host\n[edge:vars\n")
    with pytest.raises(ConfigError) as exc:
        load_inventory(bad)
    assert "\n" not in str(exc.value) and str(exc.value).startswith(str(bad)), str(exc.value)
    orphan = tmp_path / "orphan.ini"
    orphan.write_text("[edge]\nstore-1\n[web]\nwww1\n")
    with pytest.raises(ConfigError) as exc:
        load_inventory(orphan)
    assert str(exc.value).startswith(f"{orphan}:4: www1: no role"), str(exc.value)
    with pytest.raises(ConfigError, match="file not found"):
        load_inventory(tmp_path / "missing.ini")


def test_hooks_and_faults_come_from_variables_too():
    data = listing({"s": {"edge_conformance_hooks": {"kill": {"command": "systemctl kill edge"}},
                          "edge_conformance_faults": {"process": {"service": "edge.service"}}}},
                   {"edge": {"hosts": ["s"]}})
    (site,) = build(data, "[edge]\ns\n").sites
    assert sorted(site.hooks) == ["kill"]
    assert site.faults is not None and site.faults.process.service == "edge.service"
    assert site.faults.host == "ansible://s?ansible_inventory=/inv/hosts.ini"


@needs_ansible
def test_an_inventory_directory(tmp_path):
    from conformance.engine.inventory import load_inventory

    (tmp_path / "inv" / "group_vars").mkdir(parents=True)
    (tmp_path / "inv" / "hosts.ini").write_text("[stores]\nstore-1\n[web]\nwww1\n")
    (tmp_path / "inv" / "group_vars" / "stores.yml").write_text("edge_conformance_role: edge\n")
    with pytest.raises(ConfigError) as exc:
        load_inventory(tmp_path / "inv")
    assert str(exc.value).startswith(f"{tmp_path / 'inv'}: www1: no role"), str(exc.value)
    (tmp_path / "inv" / "hosts.ini").write_text("[stores]\nstore-1\n")
    assert [(s.name, s.role) for s in load_inventory(tmp_path / "inv").sites] == [("store-1", "edge")]
