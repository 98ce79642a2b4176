"""Probe protocols by name. Add one by subclassing Protocol (or CallbackProtocol) and calling
register_protocol()."""

from __future__ import annotations

from ..config import ProbeConfig
from .base import CallbackProtocol, Connection, ConnectionPool, Protocol
from .http import HttpKeepAlive, HttpNewConnection
from .tcp import TcpConnect, TcpEcho
from .udp import UdpEcho

PROTOCOLS: dict[str, type[Protocol]] = {}


def register_protocol(cls: type[Protocol]) -> type[Protocol]:
    PROTOCOLS[cls.name] = cls
    return cls


for _cls in (HttpKeepAlive, HttpNewConnection, TcpConnect, TcpEcho, UdpEcho):
    register_protocol(_cls)


def make_protocol(config: ProbeConfig) -> Protocol:
    return PROTOCOLS[config.protocol](config)


__all__ = ["PROTOCOLS", "CallbackProtocol", "Connection", "ConnectionPool", "Protocol", "make_protocol",
           "register_protocol"]
