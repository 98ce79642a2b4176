"""The SSH lab for tests that need it to outlive the harness (a harness SIGKILLed mid-cut): the product's
SshLab (conformance/emulation/docker/sshlab.py, what `--target emulated:ssh-lab --backend docker` runs)
started by the test itself, its containers and network labelled LABEL=<lab id> only (no harness label, so
no sweep of the harness touches them), and a target file written for it.

`TestLab.start(client, image, root)` brings up central `hq` and edge `store-1`; `target(path, margin=,
defects=)` writes the lab's target file (defects go to the probes' `defects:`); `sh()` reads a site through
`docker exec` (what a test observes, never what the harness measures); `stop()` removes it all and
`left()` lists what still carries the lab's label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance.emulation.docker.sshlab import LabSite, SshLab

LABEL = "io.edge-conformance.test"
SITES = (("hq", "central", None, []), ("store-1", "edge", "hq", []))


@dataclass
class TestLab:
    __test__ = False  # not a test class

    lab: SshLab
    client: Any
    lab_id: str = field(default_factory=lambda: f"sshlab-{os.getpid()}-{os.urandom(2).hex()}")

    @classmethod
    def start(cls, client, image: str, root: Path, sites=SITES) -> TestLab:
        lab_id = f"sshlab-{os.getpid()}-{os.urandom(2).hex()}"
        lab = SshLab.start(client, image, root, sites, prefix=f"edgeconf-test-{lab_id}",
                           labels_of=lambda site, kind: {LABEL: lab_id})
        return cls(lab, client, lab_id)

    @property
    def sites(self) -> list[LabSite]:
        return self.lab.sites

    def site(self, name: str) -> LabSite:
        return self.lab.site(name)

    def target(self, path: Path, *, margin: str = "30 s", defects: dict[str, list[str]] | None = None) -> Path:
        doc = self.lab.target_doc(margin=margin)
        for site in doc["sites"]:
            if defects and defects.get(site["name"]):
                site["probes"]["defects"] = list(defects[site["name"]])
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def sh(self, name: str, command: str) -> tuple[int, str]:
        code, out = self.site(name).container.exec_run(["sh", "-c", command])
        return code, out.decode(errors="replace")

    def stop(self) -> None:
        self.lab.stop()

    def left(self) -> dict[str, list[str]]:
        flt = {"label": [f"{LABEL}={self.lab_id}"]}
        return {"containers": [c["Names"][0] for c in self.client.api.containers(all=True, filters=flt)],
                "networks": [n["Name"] for n in self.client.api.networks(filters=flt)]}
