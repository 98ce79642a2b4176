"""The site fork server: every forked site is a process of its own (pid, session, life-line, command
line, run labels, exit status), one site's death touches no other, and the server's own death loses
no site."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import urllib.request
from pathlib import Path

import psutil
import pytest

from conformance.emulation import forkserver as F
from conformance.emulation import procs

RUN_ID = "test-forkserver"


def site_argv(data_dir: Path, name: str = "central") -> list[str]:
    return procs.module_argv("edge_workloads", "--role", "central", "--name", name, "--data-dir", str(data_dir))


def answers(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as reply:
        return reply.status == 200


@contextlib.asynccontextmanager
async def serving(tmp_path: Path):
    """A fork server for the test, stopped at its end whatever happened."""
    server = F.ForkServer(run_id=RUN_ID, log_path=tmp_path / "forkserver.log", timeout=30)
    try:
        yield server
    finally:
        await server.close()


async def start(server: F.ForkServer, tmp_path: Path, name: str):
    return await procs.spawn(site_argv(tmp_path / name, name), run_id=RUN_ID, log_path=tmp_path / f"{name}.log",
                             timeout=30, forkserver=server)


def test_mode_is_chosen_by_size_and_can_be_forced(monkeypatch):
    monkeypatch.delenv(F.MODE_ENV, raising=False)
    assert F.mode_for(F.FORK_ABOVE) == "exec"
    assert F.mode_for(F.FORK_ABOVE + 1) == "fork"
    monkeypatch.setenv(F.MODE_ENV, "fork")
    assert F.mode_for(1) == "fork"
    monkeypatch.setenv(F.MODE_ENV, "exec")
    assert F.mode_for(5000) == "exec"
    monkeypatch.setenv(F.MODE_ENV, "threads")
    with pytest.raises(ValueError, match=F.MODE_ENV):
        F.mode_for(3)


def test_a_forked_site_is_a_process_of_its_own(tmp_path):
    async def scenario():
        async with serving(tmp_path) as server:
            one, ready_one = await start(server, tmp_path, "one")
            two, ready_two = await start(server, tmp_path, "two")
            assert ready_one["pid"] == one.pid and ready_two["pid"] == two.pid and one.pid != two.pid
            assert answers(ready_one["port"]) and answers(ready_two["port"])
            for proc, name in ((one, "one"), (two, "two")):
                assert os.getsid(proc.pid) == proc.pid              # its own session and group
                ps = psutil.Process(proc.pid)
                assert str(tmp_path / name) in " ".join(ps.cmdline())  # found by its data dir
                assert ps.environ()[procs.RUN_ID_ENV] == RUN_ID        # and by its run label
            assert {p.pid for p in procs.find_labelled(RUN_ID).get(RUN_ID, [])} >= {one.pid, two.pid}

            # a crash (SIGKILL) of one: its status is reported, the other one still answers
            os.kill(one.pid, signal.SIGKILL)
            assert await asyncio.wait_for(one.wait(), 10) == -signal.SIGKILL
            assert answers(ready_two["port"])
            # a stop: SIGTERM ends it cleanly, with status 0
            assert await procs.reap(two) == 0
        assert server.server is not None and server.server.returncode is not None

    asyncio.run(scenario())


def test_a_site_ends_when_its_life_line_closes(tmp_path):
    async def scenario():
        async with serving(tmp_path) as server:
            site, _ = await start(server, tmp_path, "site")
            os.close(site._stdin_fd)           # what the harness's death does to it
            site._stdin_fd = os.open(os.devnull, os.O_RDONLY)  # something for ended() to close
            assert await asyncio.wait_for(site.wait(), 10) == 0
            assert "stdin closed" in (tmp_path / "site.log").read_text()

    asyncio.run(scenario())


def test_the_sites_outlive_their_fork_server_and_a_new_one_takes_over(tmp_path):
    async def scenario():
        async with serving(tmp_path) as server:
            site, ready = await start(server, tmp_path, "site")
            first_server = server.server
            assert first_server is not None
            os.kill(first_server.pid, signal.SIGKILL)
            await first_server.wait()
            await asyncio.sleep(0.3)
            assert answers(ready["port"])      # the site does not die with the server
            os.kill(site.pid, signal.SIGKILL)  # its exit status is lost with the server, its end is not
            assert await asyncio.wait_for(site.wait(), 10) == F.UNKNOWN_EXIT
            again, ready_again = await start(server, tmp_path, "again")
            assert server.server is not first_server and answers(ready_again["port"])
            await procs.reap(again)

    asyncio.run(scenario())


def test_only_sites_are_forked(tmp_path):
    async def scenario():
        async with serving(tmp_path) as server:
            with pytest.raises(F.ForkServerError, match="sites only"):
                await server.spawn(procs.module_argv("http.server"), tmp_path / "x.log")
            assert server.server is None       # refused before anything started

    asyncio.run(scenario())


def test_a_child_that_fails_to_start_reports_its_status(tmp_path):
    async def scenario():
        async with serving(tmp_path) as server:
            argv = procs.module_argv("edge_workloads", "--role", "edge", "--name", "x", "--data-dir", str(tmp_path))
            with pytest.raises(procs.SpawnError, match="status 2"):   # --central-url missing: exit 2
                await procs.spawn(argv, run_id=RUN_ID, log_path=tmp_path / "x.log", timeout=30, forkserver=server)
            assert "--central-url is required" in (tmp_path / "x.log").read_text()

    asyncio.run(scenario())


def test_the_server_is_labelled_as_every_process_of_a_deployment(tmp_path):
    async def scenario():
        async with serving(tmp_path) as server:
            await server._ensure_started()
            assert server.server is not None and psutil.pid_exists(server.server.pid)
            cmd = " ".join(psutil.Process(server.server.pid).cmdline())
            assert "edge_workloads.forkserver" in cmd
            assert server.server.pid in {p.pid for p in procs.find_labelled(RUN_ID).get(RUN_ID, [])}

    asyncio.run(scenario())
