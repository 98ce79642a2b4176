"""The parsed command line of a site (kept free of asyncio/aiohttp imports: see lean.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SiteOptions:
    role: str                      # "central" | "edge"
    name: str
    data_dir: str
    central_url: str | None = None
    port: int = 0
    defects: frozenset[str] = frozenset()
    site_config: dict[str, Any] = field(default_factory=dict)
