"""Params that checks of several suites declare alike (this module declares no checks itself)."""

from . import Param

# The checks that read a site's hosts (functional, security and footprint suites).
HOST = Param("str", "only the site's hosts whose spec contains this text (default: every host)", default=None)
HOST_TIMEOUT = Param("duration", "deadline for every command on a host (connect timeout for ssh)", default="5 s")
HOST_PARAMS = {"host": HOST, "host_timeout": HOST_TIMEOUT}
PROCESS = Param("str", "the site's processes: an exact process name or a regular expression searched "
                       "in the command line (default: the emulated site's process tree from labels.pid, "
                       "the whole container for docker:// hosts, else the whole host)", default=None)

# The checks that make one HTTP request or connection (functional and security suites).
TIMEOUT = Param("duration", "give up after this long, e.g. 5 s", default="5 s")
CA_FILE = Param("str", "CA bundle to verify https endpoints with (default: the site's ca_file in the target "
                       "file, else system CAs)", default=None)

# The checks that talk to a site's API a few times (data and fleet suites).
REQUEST_TIMEOUT = Param("duration", "timeout of each request", default="5 s")
