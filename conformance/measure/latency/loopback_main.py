"""`python -m conformance.measure.latency.loopback_main`: run the loopback servers as a process.

A separate module because the package imports loopback.py; running that one with -m would execute it
twice (runpy warns about exactly this).
"""

import sys

from .loopback import main

sys.exit(main())
