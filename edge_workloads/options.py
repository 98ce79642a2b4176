"""The parsed command line of a site (kept free of asyncio/aiohttp imports: see lean.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MgmtOptions:
    """The management interface (mgmt.py): TLS on its own port, HTTP basic auth."""

    port: int                      # 0: any free port
    cert_file: str
    key_file: str
    password: str = field(repr=False)  # read from --mgmt-password-file; never printed


@dataclass(frozen=True)
class SiteOptions:
    role: str                      # "central" | "edge"
    name: str
    data_dir: str
    central_url: str | None = None
    port: int = 0
    defects: frozenset[str] = frozenset()
    site_config: dict[str, Any] = field(default_factory=dict)
    mgmt: MgmtOptions | None = None
