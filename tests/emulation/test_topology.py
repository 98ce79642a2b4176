"""Topology files: parsing, fleets, defaults vs constraints, units, errors, built-ins, defects."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

from conformance.model.errors import ConfigError
from conformance.model import topology as T
from conformance.model.topology import (apply_defects, list_topologies, load_topology, parse_quantity,
                                        topologies_dir)


def write(tmp_path: Path, text: str, name: str = "topo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def links(topo: T.Topology) -> dict[str, T.LinkSpec]:
    return {link.name: link for link in topo.links}


# ---------------------------------------------------------------------------------------- fleets


def test_fleet_patterns_expand_and_every_edge_gets_a_wan_and_an_access_link(tmp_path):
    topo = load_topology(write(tmp_path, """
        name: shops
        sites:
          - {name: hq, role: central}
          - {name: "store-[1-20]", role: edge}
          - {name: "kiosk-[01-03]", role: edge, count: 3}
          - {name: "van-{i}", role: edge, count: 2}
          - {name: dc-1, role: regional}
        """))
    names = [s.name for s in topo.sites]
    assert names[:3] == ["hq", "store-1", "store-2"] and names[20] == "store-20"
    assert names[21:] == ["kiosk-01", "kiosk-02", "kiosk-03", "van-1", "van-2", "dc-1"]
    assert topo.name == "shops"
    by_name = {s.name: s for s in topo.sites}
    assert by_name["store-7"].uplink == "hq" and by_name["hq"].uplink is None
    assert by_name["dc-1"].workload == "edge" and by_name["dc-1"].uplink == "hq"  # regional default
    ls = links(topo)
    edges = [n for n in names if n != "hq"]
    assert {f"wan:{n}" for n in edges} | {f"access:{n}" for n in names} == set(ls)
    assert ls["wan:van-2"].kind == "wan" and ls["wan:van-2"].site == "van-2" and ls["wan:van-2"].peer == "hq"
    assert ls["access:hq"].kind == "access" and ls["access:hq"].peer is None


def test_explicit_uplinks_pick_among_several_central_sites(tmp_path):
    topo = load_topology(write(tmp_path, """
        sites:
          - {name: eu, role: central}
          - {name: us, role: central}
          - {name: "paris-[1-2]", role: edge, uplink: eu}
          - {name: boston, role: edge, uplink: us}
        """))
    assert topo.name == "topo"  # defaults to the file name
    assert links(topo)["wan:paris-2"].peer == "eu" and links(topo)["wan:boston"].peer == "us"


# ---------------------------------------------------------------------- defaults and constraints


def test_wan_and_access_defaults_then_constraints_by_name_role_pattern_and_clients(tmp_path):
    topo = load_topology(write(tmp_path, """
        sites:
          - {name: central, role: central}
          - {name: "store-[1-4]", role: edge}
        wan: {default_delay: 20 ms, default_jitter: 2 ms, default_loss: 0.1 %, default_rate: 10 Mbit/s}
        access: {delay: 1 ms, rate: 100 Mbit/s}
        constraints:
          - {src: central, dst: store-2, delay: 60 ms}
          - {src: "store-[3-4]", dst: central, loss: 5 %}   # reversed ends: links are symmetric
          - {src: edge, dst: central, rate: 2 Mbit/s}       # a role
          - {src: "store-4", dst: "*", rate: unlimited, symmetric: true}
          - {src: clients, dst: store-1, delay: 5 ms, jitter: 1 ms}
        """))
    ls = links(topo)
    plain = ls["wan:store-1"]
    assert (plain.delay_ms, plain.jitter_ms, plain.loss, plain.bandwidth_bps) == (20.0, 2.0, 0.001, 2_000_000)
    assert ls["wan:store-2"].delay_ms == 60.0 and ls["wan:store-2"].loss == 0.001
    assert ls["wan:store-3"].loss == 0.05 and ls["wan:store-3"].delay_ms == 20.0
    assert ls["wan:store-4"].loss == 0.05 and ls["wan:store-4"].bandwidth_bps is None  # later wins
    assert (ls["access:store-1"].delay_ms, ls["access:store-1"].jitter_ms) == (5.0, 1.0)
    assert ls["access:store-2"].delay_ms == 1.0 and ls["access:store-2"].bandwidth_bps == 100_000_000
    assert ls["access:central"].loss == 0.0
    assert ls["wan:store-1"].params() == {"delay_ms": 20.0, "jitter_ms": 2.0, "loss": 0.001,
                                          "bandwidth_bps": 2_000_000}


def test_without_link_settings_links_are_transparent(tmp_path):
    topo = load_topology(write(tmp_path, "sites: [{name: c, role: central}, {name: e, role: edge}]\n"))
    for link in topo.links:
        assert link.params() == {"delay_ms": 0.0, "jitter_ms": 0.0, "loss": 0.0, "bandwidth_bps": None}


# ----------------------------------------------------------------------------------------- units


@pytest.mark.parametrize("value,dimension,expected", [
    ("20 ms", "time", 0.020), ("20ms", "time", 0.020), ("500 us", "time", 0.0005), ("0.3 s", "time", 0.3),
    (0, "time", 0.0), ("0.1 %", "ratio", 0.001), ("3%", "ratio", 0.03), (0.02, "ratio", 0.02),
    ("10 Mbit/s", "bitrate", 10e6), ("10mbit", "bitrate", 10e6), ("1gbit", "bitrate", 1e9),
    ("256 kbit/s", "bitrate", 256e3), ("unlimited", "bitrate", None), (None, "bitrate", None),
    ("512 MiB", "size", 512 * 2**20), ("1 GiB", "size", 2**30), ("64MB", "size", 64e6),
])
def test_units(value, dimension, expected):
    got = parse_quantity(value, dimension)
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize("value,dimension,message", [
    ("40 msec", "time", 'unknown unit "msec" in \'40 msec\' (did you mean "ms"?)'),
    (20, "time", "needs a unit"), (10, "bitrate", "needs a unit"), ("10 Mbps", "bitrate", "unknown unit"),
    ("150 %", "ratio", "out of range"), ("-5 ms", "time", "cannot be negative"), (True, "ratio", "expected"),
    ("90 s", "time", "out of range"), ("512", "size", "needs a unit"), ("ten ms", "time", "expected a value"),
])
def test_bad_units(value, dimension, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_quantity(value, dimension)


# ------------------------------------------------------------------------------ malformed files

GOOD_HEAD = """\
name: t
sites:
  - {name: central, role: central}
  - {name: "store-[1-3]", role: edge}
"""

# (snippet, line, field path, message fragment). The file is GOOD_HEAD + snippet unless it
# starts with "!" (then the snippet is the whole file).
MALFORMED = [
    ("site: []\n", 5, "site", 'unknown key "site" (did you mean "sites"?)'),
    ("wan:\n  default_delay: 40 msec\n", 6, "wan.default_delay", 'unknown unit "msec"'),
    ("wan:\n  default_loss: 2\n", 6, "wan.default_loss", "out of range"),
    ("wan:\n  delay: 20 ms\n", 6, "wan.delay", '(did you mean "default_delay"?)'),
    ("access:\n  default_delay: 2 ms\n", 6, "access.default_delay", "the default_ prefix belongs to wan"),
    ("wan: {default_rate: 10}\n", 5, "wan.default_rate", "needs a unit"),
    ("constraints:\n  - {src: central, dst: store-9, delay: 5 ms}\n", 6, "constraints[0].dst",
     'no site or role matches "store-9" (did you mean "store-'),
    ("constraints:\n  - {src: store-1, dst: store-2, delay: 5 ms}\n", 6, "constraints[0]", "matches no link"),
    ("constraints:\n  - {src: central, dst: edge}\n", 6, "constraints[0]", "sets nothing"),
    ("constraints:\n  - {src: central, dst: edge, delay: 5 ms, symetric: true}\n", 6,
     "constraints[0].symetric", 'unknown key "symetric" (did you mean "symmetric"?)'),
    ("constraints:\n  - {src: central, dst: edge, delay: 5 ms, symmetric: false}\n", 6,
     "constraints[0].symmetric", "only symmetric: true"),
    ("!sites:\n  - name: central\n    role: centre\n", 3, "sites[0].role", 'unknown role "centre" (did you mean "central"?)'),
    ("!sites:\n  - {name: c, role: central}\n  - {name: e, role: edge, workload: pos}\n", 3,
     "sites[1].workload", 'unknown workload "pos"'),
    ("!sites:\n  - {name: c, role: central}\n  - name: e\n    role: edge\n    defect: [no-fsync]\n", 5,
     "sites[1].defect", 'unknown key "defect" (did you mean "defects"?)'),
    ("!sites:\n  - {name: c, role: central}\n  - {name: e, role: edge, defects: [no-fsnyc]}\n", 3,
     "sites[1].defects[0]", 'unknown defect "no-fsnyc" (did you mean "no-fsync"?)'),
    ("!sites:\n  - {name: c, role: central, defects: [no-fsync]}\n", 2, "sites[0].defects[0]",
     "a central site takes only slow-path"),
    ("!sites:\n  - {name: c, role: central}\n  - {name: store, role: edge, count: 3}\n", 3, "sites[1].count",
     'count needs a name pattern such as "store-[1-3]"'),
    ("!sites:\n  - {name: c, role: central}\n  - {name: \"s-[5-1]\", role: edge}\n", 3, "sites[1].name",
     "runs backwards"),
    ("!sites:\n  - {name: c, role: central}\n  - {name: \"s-[1-4]\", role: edge, count: 3}\n", 3,
     "sites[1].count", "count 3 disagrees"),
    ("!sites:\n  - {name: c, role: central}\n  - {name: \"s-[1-2]-[1-2]\", role: edge}\n", 3, "sites[1].name",
     "at most one [first-last] range"),
    ("!sites:\n  - {name: c, role: central}\n  - {name: e, role: edge, count: 0}\n", 3, "sites[1].count",
     "expected a whole number >= 1"),
    ("!sites:\n  - {name: c, role: central}\n  - name: e\n    role: edge\n    resources: {cpus: two}\n", 5,
     "sites[1].resources.cpus", "expected a number of CPUs"),
    ("!sites:\n  - {name: c, role: central}\n  - name: e\n    role: edge\n    resources: {memory: 512 Mb}\n", 5,
     "sites[1].resources.memory", 'unknown unit "Mb"'),
    ("!sites:\n  - {name: c, role: central}\n  - {name: e, role: edge, uplink: hub}\n", 3, "sites[1].uplink",
     'no site named "hub"'),
    ("!sites:\n  - {name: c, role: central}\n  - {name: e, role: edge}\n  - {name: e, role: edge}\n", 4,
     "sites[2].name", 'duplicate site name "e" (first declared at line 3)'),
    ("!sites:\n  - {name: a, role: central}\n  - {name: b, role: central}\n  - {name: e, role: edge}\n", 4,
     "sites[2]", "uplink: required, because the topology has 2 central sites"),
    ("reach: shh\n", 5, "reach", 'unknown reach "shh" (did you mean "ssh"?) (allowed: control, ssh)'),
    ("!sites: []\n", 1, "sites", "expected a non-empty list of sites"),
    ("!sites:\n  - {name: c, role: central\n", 3, None, "invalid YAML"),
]


@pytest.mark.parametrize("snippet,line,field,message", MALFORMED, ids=[m[2] or m[3] for m in MALFORMED])
def test_malformed_topologies_name_file_line_and_field(tmp_path, snippet, line, field, message):
    text = snippet[1:] if snippet.startswith("!") else GOOD_HEAD + snippet
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    text = str(info.value)
    assert "\n" not in text
    prefix = f"{path}:{line}: " + (f"{field}: " if field else "")
    assert text.startswith(prefix), text
    assert message in text, text


def test_unknown_topology_name_suggests_a_builtin():
    with pytest.raises(ConfigError, match=r'topology: unknown topology "retial" \(did you mean "retail"\?\)'):
        load_topology("retial")


# ------------------------------------------------------------------------------------- built-ins


def test_builtins_all_load_and_ship_inside_the_package():
    names = list_topologies()
    assert {"retail", "iot", "satcom", "mec", "fleet-50"} <= set(names)
    assert topologies_dir().parent.name == "emulation" and topologies_dir().parent.parent.name == "conformance"
    for name in names:
        topo = load_topology(name)
        assert topo.name == name and topo.description
        assert [s.role for s in topo.sites].count("central") == 1
        text = (topologies_dir() / f"{name}.yaml").read_text(encoding="utf-8")
        assert text.lstrip().startswith("#"), f"{name}: say where the numbers come from"


def test_builtin_numbers_match_their_documented_sources():
    retail = load_topology("retail")
    assert [s.name for s in retail.sites] == ["central", "store-1", "store-2", "store-3"]
    wan, acc = links(retail)["wan:store-1"], links(retail)["access:store-1"]
    assert wan.delay_ms == 20.0 and wan.bandwidth_bps == 10_000_000 and acc.delay_ms == 1.0

    iot = load_topology("iot")
    for link in iot.links:
        if link.kind == "wan":
            assert 0.01 <= link.loss <= 0.03 and link.bandwidth_bps == 1_000_000

    satcom = load_topology("satcom")
    assert [s.role for s in satcom.sites] == ["central", "edge"]
    sat = [x for x in satcom.links if x.kind == "wan"][0]
    assert sat.delay_ms == 300.0 and sat.bandwidth_bps == 1_000_000

    mec = load_topology("mec")
    for link in mec.links:
        if link.kind == "access" and link.site != "central":
            # client-to-site RTT = 2 x one-way delay, jitter included, inside 2-5 ms
            assert 2.0 <= 2 * (link.delay_ms - link.jitter_ms) and 2 * (link.delay_ms + link.jitter_ms) <= 5.0

    fleet = load_topology("fleet-50")
    assert len([s for s in fleet.sites if s.role == "edge"]) == 50


def test_load_by_path(tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_text((topologies_dir() / "retail.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert len(load_topology(str(path)).sites) == 4


# --------------------------------------------------------------------------------------- defects


def test_defects_from_the_command_line_go_to_the_selected_sites():
    topo = apply_defects(load_topology("retail"), ["store-2:no-fsync", "edge:duplicate-on-retry", "*:slow-path"])
    d = {s.name: s.defects for s in topo.sites}
    assert d["central"] == ("slow-path",)  # edge-only defects skip central under a wildcard
    assert d["store-1"] == ("duplicate-on-retry", "slow-path")
    assert d["store-2"] == ("no-fsync", "duplicate-on-retry", "slow-path")


@pytest.mark.parametrize("spec,message", [
    ("central:no-fsync", "a central site takes only slow-path"),
    ("store-9:no-fsync", 'no site or role matches "store-9"'),
    ("store-1:no-fsnyc", '(did you mean "no-fsync"?)'),
])
def test_bad_defect_specs(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        apply_defects(load_topology("retail"), [spec])
    assert info.value.field == "--defect" and info.value.message.startswith(f'"{spec}": ')


def test_bare_defect_means_every_site_that_takes_it():
    topo = apply_defects(load_topology("retail"), ["no-fsync"])
    d = {s.name: s.defects for s in topo.sites}
    assert d["central"] == () and all(d[f"store-{i}"] == ("no-fsync",) for i in (1, 2, 3))


def test_defect_names_match_the_site_process_contract():
    from edge_workloads.defects import CENTRAL_DEFECTS, DEFECTS

    assert set(T.DEFECTS) == set(DEFECTS)
    assert set(T.CENTRAL_DEFECTS) == set(CENTRAL_DEFECTS)


def test_the_model_imports_nothing_of_ours_outside_model():
    tree = ast.parse(Path(T.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.level == 1, ast.dump(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert not (module or "").startswith("conformance") or module.startswith("conformance.model")


def test_fleet_n_is_generated_with_fleet_50_s_links():
    from conformance.certify.bundle import _topology
    from conformance.model.topology import generated_topology

    fleet = load_topology("fleet:120")
    assert fleet.name == "fleet-120" and len(fleet.sites) == 121
    assert [s.name for s in fleet.sites[:2]] == ["central", "store-001"] and fleet.sites[-1].name == "store-120"
    wan = links(fleet)["wan:store-007"]
    assert wan.delay_ms == 20.0 and wan.bandwidth_bps == 10_000_000 and links(fleet)["access:store-007"].delay_ms == 1.0
    assert [s.name for s in load_topology("fleet:3").sites] == ["central", "store-1", "store-2", "store-3"]
    for bad in ("fleet:0", "fleet:1000"):
        with pytest.raises(ConfigError, match="fleet:N takes 1 to 999 stores"):
            load_topology(bad)
    assert generated_topology("retail") is None
    with pytest.raises(ConfigError, match="fleet:N for central and N stores"):
        load_topology("fleeet")
    # a bundle of a run on it embeds the generated topology (it is no file of the package)
    warnings: list[str] = []
    name, text = _topology({"target": {"kind": "emulated", "topology": "fleet-120"}}, warnings)
    assert name == "fleet-120" and b"store-[001-120]" in text and not warnings


def test_a_large_generated_fleet_heartbeats_less_often_so_central_sees_the_same_rate():
    from conformance.model.topology import FLEET_CHATTER_SITES

    assert load_topology(f"fleet:{FLEET_CHATTER_SITES}").sites[1].config == {}   # every second, as fleet-50
    for count, interval in ((300, 1.5), (500, 2.0), (999, 4.0)):
        store = load_topology(f"fleet:{count}").sites[1]
        assert store.config == {"heartbeat_interval_s": interval, "config_poll_interval_s": interval}, count
        # about FLEET_CHATTER_SITES heartbeats a second, never slower than naas's 5 s registry budget allows
        assert count / interval <= FLEET_CHATTER_SITES and interval <= 4.0
    assert load_topology("fleet:999").sites[0].config == {}   # central has nothing to poll
