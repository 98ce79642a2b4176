"""edge-conformance: executable edge-computing requirement profiles and the harness that runs them."""

__version__ = "0.1.0"
