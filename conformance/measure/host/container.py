"""The container of a docker:// host as the Docker SDK sees it: its state, memory and CPU counters.

Every function answers None when no SDK or daemon answers; the caller then keeps to the host's commands
(or its own error).
"""

from __future__ import annotations

from typing import Any


def _client(timeout: int):
    import docker  # noqa: PLC0415

    return docker.from_env(timeout=timeout)


def container_state(name: str) -> dict[str, Any] | None:
    """Docker's State of container `name` ({"Status": "exited", "ExitCode": 137, ...}); {"Status":
    "removed"} when Docker has no such container; None when no daemon (or SDK) answers."""
    try:
        import docker  # noqa: PLC0415

        client = _client(5)
    except Exception:  # noqa: BLE001 - no SDK, no daemon: the caller keeps its own error
        return None
    try:
        return dict(client.api.inspect_container(name).get("State") or {})
    except docker.errors.NotFound:
        return {"Status": "removed"}
    except Exception:  # noqa: BLE001
        return None
    finally:
        client.close()


def gone_reason(name: str) -> str | None:
    """Why container `name` runs no workload (it is exited, dead, removed ...), or None when it is
    running or paused, or Docker cannot be asked."""
    state = container_state(name)
    if not state or state.get("Status") in ("running", "paused"):
        return None
    code = f" (exit {state.get('ExitCode')})" if state.get("Status") in ("exited", "dead") else ""
    return f"container {name} is {state.get('Status') or '?'}{code}: the site's workload is not running"


def docker_container(name: str):
    """The container object (docker SDK), or None when the SDK or a daemon is not available."""
    try:
        return _client(3).containers.get(name)
    except Exception:  # noqa: BLE001 - no SDK, no daemon, no such container
        return None


def docker_stats(container) -> dict | None:
    try:
        try:
            return container.stats(stream=False, one_shot=True)
        except TypeError:  # an SDK without one_shot
            return container.stats(stream=False)
    except Exception:  # noqa: BLE001 - the daemon did not answer
        return None


def docker_memory(stats: dict) -> int | None:
    """Working-set memory of a container like `docker stats` shows it (usage minus inactive cache)."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    detail = mem.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0)))
    return max(0, int(usage) - int(cache or 0))


def docker_cpu_seconds(stats: dict) -> float | None:
    total = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    return None if total is None else int(total) / 1e9
