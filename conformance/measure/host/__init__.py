"""A site's hosts, read through pytest-testinfra: one small module per thing read.

    edgehost.py    EdgeHost: one host (a testinfra spec) with a deadline on every call; run(), call(),
                   require(); HostUnavailable, HostLacks
    facts.py       the one probe of what a host has (tools, /proc, systemd, uid ...)
    processes.py   the process table (psutil, procps `ps` or /proc), CPU seconds, memory in use
    sockets.py     listening sockets (psutil, `ss` or `netstat`)
    service.py     a service: systemd, OpenRC, upstart or SysV, chosen once per host
    package.py     a package (testinfra's Package, refused without a real package database)
    pkgversion.py  version constraints and dpkg's version order
    file.py        a file: exists, content, mode, owner
    sysctl.py      a kernel parameter
    clock.py       the clock's offset from ours, and NTP's view (chrony, timedatectl)
    disk.py        free space, space used, world-readable files
    container.py   a docker:// host's container through the Docker SDK (state, stats)
    site.py        which hosts, processes and paths are the site's (scopes)

Each module reads through an EdgeHost (its run() and the testinfra host behind it); where a host can be
read more than one way, a class's `of(host)` chooses the way once, from the host's facts.
"""
