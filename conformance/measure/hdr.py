"""The one place the harness gets its HdrHistogram class from.

hdrhistogram (HdrHistogram_py, with its C codec) where it is installed: every platform it has wheels
for. Elsewhere (Linux on ARM, where installing it would need a C compiler) the plain-Python port in
purehdr.py, which gives the same figures and reads and writes the same encoding.
"""

from __future__ import annotations

try:
    from hdrh.histogram import HdrHistogram
    IMPLEMENTATION = "hdrhistogram"
except ImportError:  # no wheel for this platform: pyproject.toml leaves the package out here
    from .purehdr import HdrHistogram  # type: ignore[assignment]
    IMPLEMENTATION = "purehdr"

__all__ = ["HdrHistogram", "IMPLEMENTATION"]
