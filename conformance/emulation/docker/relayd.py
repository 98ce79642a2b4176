"""relayd: linkd for the docker backend (`python -m conformance.emulation.docker.relayd [--run-id ID]`).

The same daemon, control API and shaping relay as conformance.emulation.linkd (see its docstring and
docs/wan-emulation.md), with one addition: `PUT /links/{name}` takes an optional
`"listen_host": "A.B.C.D"`, the local address the link listens on (default 127.0.0.1).

The docker backend runs one relayd on the host per deployment:

* an access link listens on 127.0.0.1 and relays to the site's port published on 127.0.0.1;
* a WAN link listens on the GATEWAY address of the edge site's own Docker network (the host's side
  of that bridge), so the edge container can reach it, and relays to the uplink's published port.

Upstreams stay loopback-only (published ports), exactly as in linkd. The listening address must be
an address of this host; linkd's relay (conformance.emulation.link.Link) is reused unchanged.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

from conformance.emulation.link import Link, LinkParams
from conformance.emulation.linkd import LinkDaemon, main as linkd_main


class BoundLink(Link):
    """A linkd Link whose LINK object says where it listens (listen_host)."""

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["listen_host"] = self.listen_host
        return data


def parse_listen_host(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"listen_host: must be an IPv4 or IPv6 address, got {value!r}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"listen_host: must be an IPv4 or IPv6 address, got {value!r}") from None
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"listen_host: {value} is not a single local address")
    return str(address)


class RelayDaemon(LinkDaemon):
    """linkd's daemon, whose PUT also takes "listen_host"."""

    service = "relayd"

    def make_link(self, name: str, upstream: Any, fields: dict[str, Any]) -> Link:
        fields = dict(fields)
        listen_host = parse_listen_host(fields.pop("listen_host", "127.0.0.1"))
        return BoundLink(name, upstream, LinkParams.from_mapping(fields), listen_host=listen_host)

    def refuse_replace(self, existing: Link, candidate: Link) -> str | None:
        if existing.listen_host != candidate.listen_host:
            return f"link {existing.name!r} listens on {existing.listen_host}; DELETE it to move it"
        return None


def main(argv: list[str] | None = None) -> int:
    return linkd_main(argv, daemon_cls=RelayDaemon, prog="python -m conformance.emulation.docker.relayd",
                      description="linkd with links bound to chosen local addresses")


if __name__ == "__main__":
    sys.exit(main())
