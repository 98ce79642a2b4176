"""The harness's side of the site fork server (edge_workloads/forkserver.py): start it, ask it for
site processes, follow their exits.

A large local deployment (more than FORK_ABOVE sites, or EDGE_CONFORMANCE_SITE_PROCESSES=fork) starts
its sites through one fork server instead of one interpreter each: every site is still a process of
its own (own pid, session, stdin life-line, log), so the supervisor drives it exactly as before;
`ForkedProcess` offers the part of asyncio's Process that procs.py and LocalSite use (pid,
returncode, wait, stdout). The fork server is not the sites' harness: it only forks and reports exit
statuses. If it dies, the sites keep running (each is held by its own stdin) and the next start
brings up a new server; the exit of a site forked by the dead one is then seen by polling its pid.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
from pathlib import Path
from typing import Any

from . import procs

SERVER_MODULE = "edge_workloads.forkserver"
MODE_ENV = "EDGE_CONFORMANCE_SITE_PROCESSES"   # fork | exec | auto (the default)
MODES = ("auto", "fork", "exec")
FORK_ABOVE = 100          # auto: a deployment of more sites than this forks them
TITLE_SPACE = 4096        # room in the server's argv for its children's command lines
POLL_S = 0.2              # how often the pid of an orphaned site is checked
UNKNOWN_EXIT = 1          # the exit status of a site whose fork server died before it: a failure


class ForkServerError(procs.SpawnError):
    """The fork server could not be started or could not fork a site."""


def mode_for(site_count: int, mode: str | None = None) -> str:
    """'fork' or 'exec' for a deployment of `site_count` sites."""
    chosen = (mode or os.environ.get(MODE_ENV) or "auto").strip().lower()
    if chosen not in MODES:
        raise ValueError(f"{MODE_ENV}={chosen!r}: expected one of {', '.join(MODES)}")
    if chosen == "auto":
        return "fork" if site_count > FORK_ABOVE else "exec"
    return chosen


class ForkedProcess:
    """A site process forked by the server: pid, returncode, wait() and stdout, as asyncio's Process."""

    def __init__(self, pid: int, stdin_fd: int, stdout: asyncio.StreamReader, transport: asyncio.BaseTransport):
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self._stdin_fd = stdin_fd          # our end of its life-line: closed once it has ended
        self._stdout_transport = transport
        self._ended = asyncio.Event()

    async def wait(self) -> int:
        await self._ended.wait()
        assert self.returncode is not None
        return self.returncode

    def ended(self, code: int) -> None:
        if self._ended.is_set():
            return
        self.returncode = code
        try:
            os.close(self._stdin_fd)
        except OSError:
            pass
        self._ended.set()

    async def poll_until_gone(self) -> None:
        """Its fork server died: the exit status is lost, the end is still seen."""
        while not self._ended.is_set():
            try:
                os.kill(self.pid, 0)
                if _is_zombie(self.pid):
                    raise ProcessLookupError
            except ProcessLookupError:
                self.ended(UNKNOWN_EXIT)
                return
            except PermissionError:
                pass
            await asyncio.sleep(POLL_S)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


class ForkServer:
    """One fork server of a deployment and the sites it forked."""

    def __init__(self, *, run_id: str, log_path: Path, timeout: float):
        self.run_id = run_id
        self.log_path = log_path
        self.timeout = timeout
        self.server: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._reader: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}   # exits seen before spawn() registered the child
        self._lock = asyncio.Lock()

    async def _ensure_started(self) -> None:
        if self.server is not None and self.server.returncode is None and self._sock is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = procs.module_argv(SERVER_MODULE, "--control-fd", str(theirs.fileno()),
                                     "--title-space", "_" * TITLE_SPACE)
            # SPT_NOENV: the children's titles go into the argv area only; the environment, which
            # carries the run labels that find leftovers, stays intact.
            self.server, _ready = await procs.spawn(argv, run_id=self.run_id, log_path=self.log_path,
                                                    timeout=self.timeout, pass_fds=(theirs.fileno(),),
                                                    extra_env={"SPT_NOENV": "1"})
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._reader = asyncio.get_running_loop().create_task(self._read(ours))

    async def spawn(self, argv: list[str], log_path: Path) -> ForkedProcess:
        """Fork a site running `argv` (python -m edge_workloads ...); stderr appended to `log_path`."""
        prefix = procs.module_argv("edge_workloads")
        if argv[:len(prefix)] != prefix:
            raise ForkServerError(f"the fork server runs sites only, not {argv[:3]}")
        async with self._lock:
            await self._ensure_started()
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        request_id = next(self._ids)
        answer: asyncio.Future = loop.create_future()
        self._pending[request_id] = answer
        try:
            message = json.dumps({"id": request_id, "argv": argv[len(prefix):]}).encode()
            await self._send(message, [stdin_r, stdout_w, log_fd])
        except BaseException:
            self._pending.pop(request_id, None)
            for fd in (stdin_w, stdout_r):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, stdout_w, log_fd):
                os.close(fd)
        try:
            reply = await asyncio.wait_for(answer, self.timeout)
        except BaseException:
            self._pending.pop(request_id, None)
            os.close(stdin_w)
            os.close(stdout_r)
            raise
        if "pid" not in reply:
            os.close(stdin_w)
            os.close(stdout_r)
            raise ForkServerError(f"the fork server could not fork the site: {reply.get('error')}")
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(stdout_r, "rb", 0))
        child = ForkedProcess(int(reply["pid"]), stdin_w, reader, transport)
        self._children[child.pid] = child
        early = self._early_exits.pop(child.pid, None)
        if early is not None:
            del self._children[child.pid]
            child.ended(early)
        elif self._reader is None or self._reader.done():
            loop.create_task(child.poll_until_gone())
        return child

    async def _send(self, message: bytes, fds: list[int]) -> None:
        assert self._sock is not None
        while True:
            try:
                socket.send_fds(self._sock, [message], fds)
                return
            except BlockingIOError:
                await asyncio.sleep(0.005)
            except OSError as exc:
                raise ForkServerError(f"the fork server is gone: {exc}") from None

    async def _read(self, sock: socket.socket) -> None:
        """Replies to our requests and exits of our children, until the server's end closes."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    data = await loop.sock_recv(sock, 65536)
                except OSError:
                    break
                if not data:
                    break
                message: dict[str, Any] = json.loads(data)
                if "exit" in message:
                    pid, code = int(message["exit"]), int(message["code"])
                    child = self._children.pop(pid, None)
                    if child is not None:
                        child.ended(code)
                    else:
                        self._early_exits[pid] = code   # spawn() has not registered it yet
                    continue
                answer = self._pending.pop(message.get("id"), None)
                if answer is not None and not answer.done():
                    answer.set_result(message)
        finally:
            sock.close()
            if self._sock is sock:
                self._sock = None
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_exception(ForkServerError("the fork server ended"))
            self._pending.clear()
            for child in list(self._children.values()):
                loop.create_task(child.poll_until_gone())

    async def close(self) -> None:
        """Stop the server (its sites are stopped by their own Site objects, before this)."""
        if self.server is not None:
            await procs.reap(self.server)
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
