"""A plain partition has teeth: the README's own example fails as it says it does.

`edge-conformance run --profile retail --defect store-1:drop-on-partition -r RTL-RES-05` on the local
emulated retail deployment: RTL-RES-05 (a resync across a WAN cut, `cut_mode: drop`) fails on store-1,
whose site drops the sales it could not forward, and passes on store-2, a healthy store of the same
deployment. The same resync with `cut_mode: hold` (an extra should requirement, judged in the same run on
the same sites) delivers every sale of its outage on the broken store too: a hold-cut delivers at heal
what the site gave up on, which is why the lossless musts cut with drop.
"""

from __future__ import annotations

import yaml

from tests.helpers.cli import run_edge
from tests.helpers.results import entries

HOLD = {"id": "retail-hold-cut", "version": "0", "title": "RTL-RES-05 with a hold-cut (the weak control)",
        "requirements": [{
            "id": "HOLD-RES-05", "title": "RTL-RES-05's resync, across a hold-cut", "level": "should",
            "check": "resilience.resync", "applies_to": "edge",
            "params": {"duration": "4 s", "records": 20, "timeout": "10 s", "cut_mode": "hold"},
            "expect": "delivered_ratio >= 100 % and duplicates == 0 and digest_match == true",
            "source": "assumed: RTL-RES-05 with the other cut mode, to show what the mode changes"}]}


def test_drop_on_partition_fails_the_lossless_resync_on_a_plain_partition(tmp_path):
    hold = tmp_path / "hold.yaml"
    hold.write_text(yaml.safe_dump(HOLD, sort_keys=False))
    code, results, output = run_edge(
        "--profile", "retail", "--profile", hold, "--target", "emulated:retail",
        "-r", "RTL-RES-05", "-r", "HOLD-RES-05", "--site", "store-1", "--site", "store-2",
        "--defect", "store-1:drop-on-partition", out=tmp_path / "out", cwd=tmp_path, timeout=240)
    got = entries(results)

    broken, healthy = got[("RTL-RES-05", "store-1")], got[("RTL-RES-05", "store-2")]
    assert broken["level"] == "must" and broken["status"] == "fail", broken["message"]
    assert broken["measured"]["delivered_ratio"]["value"] < 1, broken["message"]
    assert "delivered_ratio = " in broken["message"]  # the verdict names the broken metric
    assert "WAN cut (drop)" in " ".join(broken["notes"])  # a plain partition, not central down
    assert healthy["status"] == "pass", healthy["message"]
    assert healthy["measured"]["delivered_ratio"]["value"] == 1

    # The hold-cut cannot see the defect: what store-1 dropped after its timeouts arrived at heal, so
    # every sale of that outage reached central (its digests still differ: the drop-cut's losses stay).
    for site in ("store-1", "store-2"):
        weak = got[("HOLD-RES-05", site)]
        assert weak["measured"]["delivered_ratio"]["value"] == 1, f"{site}: {weak['message']}"
        assert "WAN cut (hold)" in " ".join(weak["notes"])
    assert got[("HOLD-RES-05", "store-2")]["status"] == "pass"
    assert code == 1 and results["verdict"] == "non-conformant", output[-3000:]
