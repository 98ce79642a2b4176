"""The ownership rule (issue 15) for containers and networks, with a fake Docker API (no daemon
needed): containers carry the state root; listing and cleanup take only the caller's root's, and an
unlabelled (older) container only when the caller's registry knows its run id."""

from __future__ import annotations

import os

import docker
import pytest

from conformance.emulation import deployment as D
from conformance.emulation import state as emu_state
from conformance.emulation.docker import HARNESS, LABEL_HARNESS, LABEL_RUN, backend
from conformance.model.topology import load_topology


class FakeAPI:
    """client.api: containers and networks with labels; a network in use cannot be removed."""

    def __init__(self):
        self.containers_: dict[str, dict] = {}
        self.networks_: dict[str, dict] = {}
        self.removed: list[str] = []

    def add_container(self, name: str, run: str, root: str | None, network: str, state: str = "running"):
        labels = {LABEL_HARNESS: HARNESS, LABEL_RUN: run}
        if root is not None:
            labels[backend.LABEL_STATE_ROOT] = root
        self.containers_[name] = {"Id": f"id-{name}", "Names": [f"/{name}"], "Labels": labels, "State": state,
                                  "network": network}

    def add_network(self, name: str, run: str):
        self.networks_[name] = {"Id": f"id-{name}", "Name": name, "Labels": {LABEL_HARNESS: HARNESS, LABEL_RUN: run}}

    @staticmethod
    def _match(labels: dict, filters: dict) -> bool:
        return all(labels.get(f.split("=", 1)[0]) == f.split("=", 1)[1] for f in filters.get("label", []))

    def containers(self, all: bool = False, filters: dict | None = None):  # noqa: A002 - docker's name
        return [c for c in self.containers_.values() if self._match(c["Labels"], filters or {})]

    def networks(self, filters: dict | None = None):
        return [n for n in self.networks_.values() if self._match(n["Labels"], filters or {})]

    def unpause(self, cid: str):
        pass

    def remove_container(self, cid: str, force: bool = False):
        name = next(n for n, c in self.containers_.items() if c["Id"] == cid)
        del self.containers_[name]
        self.removed.append(name)

    def remove_network(self, nid: str):
        name = next(n for n, c in self.networks_.items() if c["Id"] == nid)
        if any(c["network"] == name for c in self.containers_.values()):
            raise docker.errors.APIError(f"network {name} has active endpoints")
        del self.networks_[name]
        self.removed.append(name)


class FakeClient:
    def __init__(self):
        self.api = FakeAPI()
        self.created: list[dict] = []

    @property
    def containers(self):
        client = self

        class Containers:
            def create(self, image, **kwargs):
                client.created.append(kwargs)
                return object()

        return Containers()


@pytest.fixture
def roots(tmp_path, monkeypatch):
    a, b = tmp_path / "root-a", tmp_path / "root-b"
    b.mkdir()
    monkeypatch.setenv(emu_state.ROOT_ENV, str(a))
    return emu_state.root_label(), emu_state.root_label(b)


@pytest.fixture
def fake(roots):
    a, b = roots
    client = FakeClient()
    api = client.api
    api.add_container("ours", "run-a", a, "net-a")          # our root's run
    api.add_network("net-a", "run-a")
    api.add_container("theirs", "run-b", b, "net-b")        # another root's run
    api.add_network("net-b", "run-b")
    api.add_container("theirs-same-id", "run-x", b, "net-x")  # the same run id in two roots
    api.add_container("ours-same-id", "run-x", a, "net-x")
    api.add_network("net-x", "run-x")
    api.add_container("old", "run-old", None, "net-old")    # an older version's: no root label
    api.add_network("net-old", "run-old")
    return client


def test_containers_are_labelled_with_the_state_root(roots):
    client = FakeClient()
    spec = next(s for s in load_topology("retail").sites if s.name == "store-1")
    site = backend.DockerSite(spec, client=client, run_id="unit", image="img", network="net", start_timeout=1)
    site._create()
    labels = client.created[0]["labels"]
    assert labels[backend.LABEL_STATE_ROOT] == roots[0] and labels[LABEL_RUN] == "unit"


def test_sweep_run_takes_only_the_callers_root(fake, roots):
    a, b = roots
    assert backend.sweep_run("run-b", fake) == {"containers": [], "networks": []}  # another root's run
    assert backend.sweep_run("run-x", fake) == {"containers": ["ours-same-id"], "networks": []}
    assert "theirs-same-id" in fake.api.containers_ and "net-x" in fake.api.networks_  # still theirs
    assert backend.sweep_run("run-old", fake, legacy=False) == {"containers": [], "networks": []}
    assert backend.sweep_run("run-a", fake) == {"containers": ["ours"], "networks": ["net-a"]}
    assert backend.sweep_run("run-old", fake) == {"containers": ["old"], "networks": ["net-old"]}  # adopted
    assert set(fake.api.containers_) == {"theirs", "theirs-same-id"}
    assert backend.sweep_run("run-b", fake, root=b) == {"containers": ["theirs"], "networks": ["net-b"]}


def test_sweep_of_every_run_takes_only_root_labelled_containers_of_the_callers_root(fake, roots):
    removed = backend.sweep_run(None, fake)
    assert sorted(removed["containers"]) == ["ours", "ours-same-id"] and removed["networks"] == ["net-a"]
    assert set(fake.api.containers_) == {"theirs", "theirs-same-id", "old"}


def test_listing_sorts_containers_by_owner(fake, roots, monkeypatch):
    a, b = roots
    monkeypatch.setattr(backend, "quiet_objects", lambda: backend.labelled_objects(fake))
    emu_state.write_entry({"run_id": "run-known-old", "pid": None, "backend": "docker"})
    fake.api.add_container("known-old", "run-known-old", None, "net-known-old")
    fake.api.add_network("net-known-old", "run-known-old")
    own, foreign = D._survey()
    mine = {r.run_id: r for r in own}
    assert set(mine) == {"run-a", "run-x", "run-known-old"}
    assert mine["run-a"].containers == ["ours"] and mine["run-x"].containers == ["ours-same-id"]
    assert mine["run-known-old"].containers == ["known-old"] and mine["run-known-old"].backend == "docker"
    theirs = {(r.run_id, r.state_root): r for r in foreign if r.backend == "docker"}  # not real processes
    assert set(theirs) == {("run-b", b), ("run-x", b), ("run-old", None)}
    assert theirs[("run-b", b)].containers == ["theirs"] and not theirs[("run-b", b)].ours
    assert theirs[("run-old", None)].containers == ["old"]
    assert {r.run_id for r in D.list_running()} == set(mine)


def test_temporary_images_stay_while_any_container_of_ours_exists(fake, monkeypatch, tmp_path):
    from conformance.emulation.docker import images

    monkeypatch.setattr(images, "cache_dir", lambda: tmp_path)
    calls = []
    monkeypatch.setattr(images, "remove_temporary_images", lambda client: calls.append(1) or ["img"])
    assert backend._remove_temporary_images_if_unused(fake) == [] and not calls
    fake.api.containers_.clear()
    assert backend._remove_temporary_images_if_unused(fake) == ["img"]
    with open(tmp_path / "build.lock", "a+") as lock:  # a build in progress (any root)
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        pid = os.fork()
        if pid == 0:  # the lock is per open file description: test it from another process
            os._exit(0 if backend._remove_temporary_images_if_unused(fake) == [] else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and len(calls) == 1
