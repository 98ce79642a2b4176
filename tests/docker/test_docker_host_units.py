"""How the host checks treat the docker:// host of an emulated docker site (no daemon needed):
Docker's embedded DNS resolver is excused and nothing else, the data dir is read inside the site's own
container only, and the site's process is the container's workload command below its PID 1."""

from __future__ import annotations

from types import SimpleNamespace

from conformance.measure.host.edgehost import EdgeHost
from conformance.measure.host.facts import Facts, parse_facts, probe_script
from conformance.measure.host.processes import Proc, parse_ps
from conformance.measure.host.site import Scope, is_site_container, site_data_dir, workload_scope
from conformance.measure.host.sockets import Listener, docker_dns_listener

CONTAINER = "edgeconf-RUN-store-1"
COMMAND = "python3 -m conformance.emulation.docker.siteinit"


def docker_site(**labels):
    base = {"backend": "docker", "container": CONTAINER, "data_dir": "/data", "command": COMMAND}
    return SimpleNamespace(name="store-1", labels={**base, **labels})


def local_site():
    return SimpleNamespace(name="store-1", labels={"pid": 1234, "data_dir": "/tmp/state/store-1"})


DOCKER = EdgeHost(f"docker://{CONTAINER}")
OTHER = EdgeHost("docker://someone-elses-container")
LOCAL = EdgeHost("local://")
SSH = EdgeHost("ssh://box")
SSH._facts = Facts()  # a server: no /.dockerenv
SSH_CONTAINER = EdgeHost("ssh://root@127.0.0.1:2222")
SSH_CONTAINER._facts = Facts(in_docker=True)  # a container with its own sshd (the SSH lab's sites)


def test_only_dockers_dns_sockets_on_a_docker_host_are_excused():
    dns_tcp = Listener("tcp", "127.0.0.11", 45373)          # dockerd's: no owner in the container
    dns_udp = Listener("udp", "127.0.0.11", 40136)
    assert docker_dns_listener(DOCKER, dns_tcp) and docker_dns_listener(DOCKER, dns_udp)
    # A process of the container on that address has a visible owner: it is the site's, not Docker's.
    assert not docker_dns_listener(DOCKER, Listener("tcp", "127.0.0.11", 53, 7, "python3"))
    # Another address with no owner, or the same socket on a host that is not a container: flagged.
    assert not docker_dns_listener(DOCKER, Listener("tcp", "127.0.0.1", 45373))
    assert not docker_dns_listener(DOCKER, Listener("tcp", "0.0.0.0", 45373))
    assert not docker_dns_listener(LOCAL, dns_tcp)
    assert not docker_dns_listener(SSH, dns_tcp)
    # reached by ssh, but a container by its own word (/.dockerenv): the same resolver, the same excuse
    assert docker_dns_listener(SSH_CONTAINER, dns_tcp)
    assert not docker_dns_listener(SSH_CONTAINER, Listener("tcp", "127.0.0.11", 53, 7, "python3"))
    assert parse_facts("tool ss /usr/bin/ss\nin-docker\n").in_docker and not parse_facts("proc\n").in_docker
    assert "/.dockerenv" in probe_script()


def test_the_data_dir_is_read_where_the_host_sees_it():
    assert is_site_container(docker_site(), DOCKER)
    assert site_data_dir(docker_site(), DOCKER) == "/data"
    # /data is inside the site's container: meaningless on this machine or in another container.
    assert site_data_dir(docker_site(), LOCAL) is None
    assert site_data_dir(docker_site(), OTHER) is None
    assert site_data_dir(docker_site(data_dir=None), DOCKER) is None
    # The local backend's data dir is a path on this machine.
    assert site_data_dir(local_site(), LOCAL) == "/tmp/state/store-1"
    assert site_data_dir(local_site(), SSH) is None


PS = f"""      1 docker-init
      7 python3
      9 sh
     10 ps
__args__
      1       0   696 /sbin/docker-init -- {COMMAND}
      7       1 38748 {COMMAND}
      9       7  1000 sh -c true
     10       0  4344 ps -e -ww -o pid=,ppid=,rss=,args=
"""


def test_the_workload_scope_is_the_containers_command_below_pid_1():
    scope = workload_scope(docker_site(), DOCKER)
    assert scope is not None and scope.kind == "workload" and CONTAINER in scope.text
    assert sorted(p.pid for p in scope.select(parse_ps(PS))) == [7, 9]  # the workload and its child
    # Not on another host, nor for a site that names no command (those skip, as before).
    assert workload_scope(docker_site(), OTHER) is None
    assert workload_scope(docker_site(), LOCAL) is None
    assert workload_scope(docker_site(command=None), DOCKER) is None


def test_the_workload_scope_is_empty_when_the_workload_is_gone():
    scope = workload_scope(docker_site(), DOCKER)
    init_only = [Proc(1, 0, "docker-init", f"/sbin/docker-init -- {COMMAND}"),
                 Proc(12, 0, "sh", "sh -c ps")]
    assert scope.select(init_only) == []
    # The same command started by `docker exec` (ppid 0, not below PID 1) is not the site's workload.
    execd = [Proc(1, 0, "docker-init", "/sbin/docker-init -- sleep 1000"), Proc(20, 0, "python3", COMMAND)]
    assert scope.select(execd) == []
    # Without an init the command is PID 1 itself.
    assert [p.pid for p in scope.select([Proc(1, 0, "python3", COMMAND)])] == [1]
    assert Scope("workload", "x", pattern=COMMAND).select([]) == []
