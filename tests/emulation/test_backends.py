"""The backend registry, the Site protocol and the one restart policy (conformance.emulation.backends,
conformance.emulation.site)."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

import conformance.emulation as emulation_pkg
from conformance.emulation import backends, site as site_mod, supervise
from conformance.emulation.docker.backend import DockerSite
from conformance.emulation.procs import SpawnError
from conformance.emulation.site import EXITED, RESTARTING, RUNNING, STOPPED, Site, StateError
from conformance.emulation.local_site import LocalSite
from conformance.emulation.supervisor import Supervisor
from conformance.model.errors import ConfigError
from conformance.model.topology import load_topology

EMULATION = Path(emulation_pkg.__file__).parent
LIFECYCLE = ("start", "stop", "restart", "kill", "pause", "resume", "close", "exited", "_restart_after_crash",
             "_launch_or_give_up", "_cancel_restart")


# ------------------------------------------------------------------ the registry


def test_every_backend_is_a_supervisor_named_as_registered():
    assert list(backends.BACKENDS)[0] == backends.DEFAULT == "local"
    for name in backends.BACKENDS:
        cls = backends.backend_class(name)
        assert issubclass(cls, Supervisor) and cls.backend_name == name
        assert not getattr(cls, "__abstractmethods__", None), (name, cls.__abstractmethods__)


def test_an_unknown_backend_is_a_clear_error():
    with pytest.raises(backends.UnknownBackend, match=r'emulation backend "dokcer" is not available here '
                                                      r'\(did you mean "docker"\?\) \(available: local, docker\)'):
        backends.backend_class("dokcer")


def test_start_deployment_refuses_an_unknown_backend_before_anything_starts():
    from conformance.emulation import start_deployment

    with pytest.raises(ConfigError, match="podman.*available: local, docker"):
        start_deployment("retail", backend="podman")


def test_the_supervisor_command_line_refuses_an_unknown_backend(capsys):
    with pytest.raises(SystemExit) as exc:  # argparse: one of the registry's names
        supervise.main(["--topology", "retail", "--backend", "podman"])
    assert exc.value.code == 2
    assert "invalid choice: 'podman'" in capsys.readouterr().err


def test_a_bad_topology_is_a_ready_line_and_exit_2(capsys):
    assert supervise.main(["--topology", "no-such-topology", "--run-id", "unit"]) == 2
    line = json.loads(capsys.readouterr().out)
    assert line["ready"] is False and line["run_id"] == "unit" and "no-such-topology" in line["error"]


# ------------------------------------------------------------------ the Site protocol


@pytest.mark.parametrize("cls", [LocalSite, DockerSite])
def test_both_sites_are_sites_and_inherit_the_lifecycle_and_restart_policy(cls):
    assert issubclass(cls, Site) and not cls.__abstractmethods__
    for name in LIFECYCLE:  # implemented once, in Site: a backend supplies only the primitives
        assert getattr(cls, name) is getattr(Site, name), f"{cls.__name__} overrides {name}"


def test_sites_of_both_backends_answer_status_and_health_alike(tmp_path):
    spec = next(s for s in load_topology("retail").sites if s.name == "store-1")
    local = LocalSite(spec, run_id="unit", data_dir=tmp_path / "d", log_path=tmp_path / "l", start_timeout=1)
    docker = DockerSite(spec, client=None, run_id="unit", image="img", network="net", start_timeout=1)
    for s in (local, docker):
        status = s.status()
        assert {"name", "role", "workload", "uplink", "pid", "port", "state", "restarts", "last_exit",
                "defects", "data_dir", "log"} <= set(status)
        assert status["state"] == STOPPED and status["pid"] is None
        assert s.health_url == f"http://127.0.0.1:{s.port}/health"
        assert s.target_hosts() and s.target_labels()["workload"] == "edge"


def test_base_modules_import_no_backend_and_nobody_imports_private_names():
    bases = {"site.py", "supervisor.py", "backends.py", "common.py", "supervise.py", "deployment.py"}
    for path in sorted(EMULATION.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if path.name in bases and path.parent == EMULATION:
                assert not module.startswith(("docker", "local", "sites")) and "docker" not in module.split("."), \
                    (path.name, module)
            if node.level or module.startswith("conformance"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.relative_to(EMULATION)} imports {private} from {module}"
        ours = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.level or (node.module or "").startswith("conformance")) for a in node.names}
        for node in ast.walk(tree):  # nor reaches into one: module._name
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ours:
                assert not (node.attr.startswith("_") and not node.attr.startswith("__")), \
                    f"{path.relative_to(EMULATION)} uses {node.value.id}.{node.attr}"


# ------------------------------------------------------------------ the restart policy, once


class FakeSite(Site):
    """A Site whose 'process' is a flag: the primitives record what the policy asked for."""

    def __init__(self, *, fail_launches: int = 0):
        spec = next(s for s in load_topology("retail").sites if s.name == "store-1")
        super().__init__(spec, run_id="unit", start_timeout=1)
        self.running = False
        self.launches = 0
        self.fail_launches = fail_launches

    async def _alive(self) -> bool:
        return self.running

    async def _launch(self, state: str) -> None:
        self.state = state
        self.launches += 1
        if self.fail_launches:
            self.fail_launches -= 1
            raise SpawnError("port taken")
        self.running = True
        self.state = RUNNING

    async def _halt(self) -> None:
        self.running = False
        self.last_exit = 0

    async def _kill(self) -> int | None:
        self.running = False
        return -9

    async def _pause(self) -> None: ...

    async def _resume(self) -> None: ...

    async def _remove(self, keep_logs_to=None) -> None:
        self.running = False

    def pid(self) -> int | None:
        return 1 if self.running else None

    def target_hosts(self) -> list[str]:
        return ["local://"]

    def target_labels(self) -> dict:
        return {"workload": self.spec.workload}

    def crash(self, code: int) -> None:
        self.running = False
        self.exited(code)


@pytest.fixture
def fast_policy(monkeypatch):
    monkeypatch.setattr(site_mod, "RESTART_DELAY_S", 0.01)
    monkeypatch.setattr(site_mod, "MAX_RESTART_DELAY_S", 0.04)


def _run(coro):
    return asyncio.run(coro)


def test_a_crash_is_restarted_and_counted(fast_policy):
    async def scenario():
        s = FakeSite()
        await s.start()
        s.crash(1)
        assert s.state == RESTARTING and s.last_exit == 1
        await asyncio.sleep(0.1)
        return s

    s = _run(scenario())
    assert s.state == RUNNING and s.restarts == 1 and s.launches == 2


def test_a_clean_exit_stays_down_until_started(fast_policy):
    async def scenario():
        s = FakeSite()
        await s.start()
        s.crash(0)
        await asyncio.sleep(0.1)
        assert s.state == EXITED and s.restarts == 0 and s.launches == 1
        await s.start()
        return s

    s = _run(scenario())
    assert s.state == RUNNING and s.restarts == 0 and s.launches == 2


def test_kill_is_a_crash_and_stop_is_not(fast_policy):
    async def scenario():
        s = FakeSite()
        await s.start()
        await s.kill()
        assert s.state == RESTARTING
        await asyncio.sleep(0.1)
        assert s.state == RUNNING and s.restarts == 1 and s.last_exit == -9
        await s.stop()
        s.exited(1)  # a late report of the stopped one changes nothing
        await asyncio.sleep(0.1)
        with pytest.raises(StateError, match="is not running"):
            await s.kill()
        return s

    s = _run(scenario())
    assert s.state == STOPPED and s.restarts == 1


def test_a_failing_restart_backs_off_and_tries_again(fast_policy):
    async def scenario():
        s = FakeSite()
        await s.start()
        s.fail_launches = 2
        s.crash(137)
        await asyncio.sleep(0.3)  # 0.01 + 0.02 + 0.04 s of backoff
        return s

    s = _run(scenario())
    assert s.state == RUNNING and s.restarts == 1 and s.launches == 4


def test_a_start_that_fails_leaves_the_site_stopped():
    async def scenario():
        s = FakeSite(fail_launches=1)
        with pytest.raises(SpawnError):
            await s.start()
        return s

    s = _run(scenario())
    assert s.state == STOPPED and not s.want_running
