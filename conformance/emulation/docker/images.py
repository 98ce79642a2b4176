"""The site image, built without a registry and cached by the digest of its recipe.

Two layers, each tagged with the digest of what went into it, so a change rebuilds only what changed:

* base  `edge-conformance/base:<digest>`: a Debian rootfs from `mmdebstrap --variant=minbase`
  with BASE_PACKAGES (python3, procps, iproute2, ping, nc: what testinfra needs; nginx-light and
  mosquitto: the real edge stack; iptables and nftables: built-in faults on a stand-in real site;
  openssh-server: the SSH lab's sshd, which nothing else starts),
  imported with `client.api.import_image`. About a minute the first time (packages come from the
  Debian mirror); the digest covers the suite, variant, packages and dpkg options.
* site  `edge-conformance/site:<digest>`: FROM the base, with the harness's workload code
  (edge_workloads + docker.siteinit) and the workload's Python dependencies
  (aiohttp and its requirements) under /opt/edge-conformance/lib, byte-compiled. Built with
  `client.images.build` from an in-memory context (offline: the base is local). A few seconds.
  The digest covers the base digest, the Dockerfile and every copied file.

The Python dependencies are copied from this interpreter's installed distributions when it is a
CPython 3.11 on Linux (the same ABI as Debian 12's python3); otherwise their cp311 wheels are
fetched with `pip download` (from PyPI) into the cache dir and unpacked.

Builds take a file lock, so concurrent harnesses build once. After a new site image is built, older
site images that no container uses are removed. Images built with `temporary=True` carry
LABEL_TEMPORARY and are removed by `emulate down --all` (remove_temporary_images).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

from . import HARNESS, LABEL_HARNESS, LABEL_KIND, LABEL_RECIPE, LABEL_TEMPORARY, WORKLOAD_ARGV

RECIPE_VERSION = 1
BASE_REPOSITORY = "edge-conformance/base"
SITE_REPOSITORY = "edge-conformance/site"
SUITE = "bookworm"
VARIANT = "minbase"
BASE_PACKAGES = (
    "python3",            # the workload (CPython 3.11 in bookworm)
    "procps",             # ps: testinfra's Process module
    "iproute2",           # ss, ip: testinfra's Socket and Interface modules
    "netcat-openbsd",     # nc: testinfra's Addr.port
    "iputils-ping",       # ping: testinfra's Addr.is_reachable
    "ca-certificates",
    "nginx-light",        # the store's content cache (proxy_cache)
    "mosquitto",          # the store's MQTT broker, bridged to central's
    "mosquitto-clients",  # mosquitto_pub/sub, for checks run inside the containers
    "iptables",           # built-in faults on a stand-in real site: partition by packet filter
    "nftables",           # (conformance/faults/onsite.py; tc is in iproute2)
    "openssh-server",     # the SSH lab (docs/real-targets.md): sshd, started only there, with its own keys
)
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)
DEFAULT_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
MIRRORS_ENV = "EDGE_CONFORMANCE_DEBIAN_MIRRORS"  # ';'-separated sources lines, to override the above
PYTHON_ROOT_REQUIREMENT = "aiohttp"
IMAGE_PYTHON = (3, 11)
LIB = "/opt/edge-conformance/lib"
MMDEBSTRAP_TIMEOUT_S = 1800
BUILD_TIMEOUT_S = 600

# Our files the site image needs (relative to the directory holding `conformance`): the reference
# workloads (a package of their own, importing nothing of the harness) and siteinit, which runs them.
_OWN_FILES = ("conformance/__init__.py", "conformance/emulation/__init__.py",
              "conformance/emulation/docker/__init__.py", "conformance/emulation/docker/siteinit.py")
_OWN_DIRS = ("edge_workloads",)


class ImageError(RuntimeError):
    """The site image could not be built (the message says which step and why)."""


@dataclass(frozen=True)
class SiteImage:
    tag: str          # edge-conformance/site:<digest16>
    id: str
    digest: str
    base_tag: str
    built: bool       # False: found in the cache
    seconds: float    # time spent here (build or lookup)


# --------------------------------------------------------------------------------- recipe


def base_digest() -> str:
    recipe = {"version": RECIPE_VERSION, "suite": SUITE, "variant": VARIANT, "packages": sorted(BASE_PACKAGES),
              "dpkg": list(DPKG_OPTIONS)}
    return _sha(json.dumps(recipe, sort_keys=True).encode())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package_root() -> Path:
    import conformance

    return Path(conformance.__file__).resolve().parent.parent


def own_files() -> dict[str, bytes]:
    """arcname (under lib/) -> content, for the harness code the site image runs."""
    root = _package_root()
    out: dict[str, bytes] = {}
    for rel in _OWN_FILES:
        out[rel] = (root / rel).read_bytes()
    for rel in _OWN_DIRS:
        for path in sorted((root / rel).rglob("*.py")):
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    out.update(_distribution_metadata())
    return out


def _distribution_metadata() -> dict[str, bytes]:
    """A minimal dist-info of edge-conformance, so the workloads in the image report this version
    (edge_workloads.version reads it with importlib.metadata, as it does outside the image)."""
    from edge_workloads.version import DISTRIBUTION, VERSION

    name = DISTRIBUTION.replace("-", "_")
    return {f"{name}-{VERSION}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {VERSION}\n".encode()}


def _requirement_closure(root: str) -> list[Any]:
    """The installed distributions `root` needs on CPython 3.11/Linux (markers evaluated for it)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    env = {"python_version": "%d.%d" % IMAGE_PYTHON, "python_full_version": "%d.%d.2" % IMAGE_PYTHON,
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython",
           "platform_machine": platform.machine(), "extra": ""}
    seen: dict[str, Any] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ImageError(f"site image: the workload needs the Python package {name!r}, "
                             "which is not installed here") from None
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return list(seen.values())


def python_dependency_files() -> dict[str, bytes]:
    """arcname (under lib/) -> content for aiohttp and what it needs, for the image's python3.11."""
    if sys.implementation.name == "cpython" and sys.version_info[:2] == IMAGE_PYTHON and sys.platform == "linux":
        return _installed_files(_requirement_closure(PYTHON_ROOT_REQUIREMENT))
    return _downloaded_files()


def _installed_files(dists: list[Any]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for dist in dists:
        for f in dist.files or []:
            rel = f.as_posix() if hasattr(f, "as_posix") else str(f)
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pyc", "RECORD", "INSTALLER")):
                continue  # scripts outside site-packages, caches, installer bookkeeping
            path = Path(dist.locate_file(f))
            if path.is_file():
                out[rel] = path.read_bytes()
    return out


def _downloaded_files() -> dict[str, bytes]:
    """cp311 manylinux wheels of aiohttp (the version installed here, if any) from PyPI, unpacked."""
    from importlib import metadata

    try:
        pin = f"{PYTHON_ROOT_REQUIREMENT}=={metadata.version(PYTHON_ROOT_REQUIREMENT)}"
    except metadata.PackageNotFoundError:
        pin = f"{PYTHON_ROOT_REQUIREMENT}>=3.9"
    machine = platform.machine()
    wheels = cache_dir() / "wheels" / _sha(pin.encode())[:12]
    if not any(wheels.glob("*.whl")):
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", "%d.%d" % IMAGE_PYTHON, "--abi", "cp%d%d" % IMAGE_PYTHON,
               "--platform", f"manylinux2014_{machine}", "--platform", f"manylinux_2_17_{machine}",
               "--platform", f"manylinux_2_28_{machine}", "--platform", "any", "-d", str(wheels), pin]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            shutil.rmtree(wheels, ignore_errors=True)
            raise ImageError(f"site image: pip download {pin} for CPython 3.11 failed: "
                             f"{done.stderr.strip()[-500:]}")
    out: dict[str, bytes] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                if not info.is_dir() and ".data/" not in info.filename:
                    out[info.filename] = z.read(info)
    return out


def dockerfile(base_tag: str, digest_hint: str = "") -> str:
    return "\n".join([
        f"FROM {base_tag}",
        "COPY lib /opt/edge-conformance/lib",
        f"ENV PYTHONPATH={LIB} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8",
        f"RUN python3 -m compileall -q -j 0 {LIB} >/dev/null"
        " && rm -f /etc/nginx/sites-enabled/default"
        " && mkdir -p /data /var/cache/edge-nginx /etc/edge-conformance"
        " && chown www-data:www-data /var/cache/edge-nginx"
        " && python3 -c 'import aiohttp, edge_workloads.edge, edge_workloads.central'",
        "WORKDIR /data",
        "STOPSIGNAL SIGTERM",
        f"ENTRYPOINT {json.dumps(list(WORKLOAD_ARGV))}",
        "",
    ])


def site_recipe(extra_files: dict[str, bytes] | None = None) -> tuple[str, str, dict[str, bytes]]:
    """(site digest, base tag, lib files) for the current code."""
    base_tag = f"{BASE_REPOSITORY}:{base_digest()[:16]}"
    files = {**python_dependency_files(), **own_files(), **(extra_files or {})}
    h = hashlib.sha256()
    h.update(f"recipe {RECIPE_VERSION}\nbase {base_tag}\n".encode())
    h.update(dockerfile(base_tag).encode())
    for name in sorted(files):
        h.update(f"{name}\0{_sha(files[name])}\n".encode())
    return h.hexdigest(), base_tag, files


# --------------------------------------------------------------------------------- building


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(root) / "edge-conformance" / "docker"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    with open(cache_dir() / "build.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _find(client: Any, tag: str) -> Any | None:
    import docker

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def ensure_image(client: Any | None = None, *, temporary: bool = False, extra_files: dict[str, bytes] | None = None,
                 progress: Callable[[str], None] | None = None) -> SiteImage:
    """The site image for the current code: from the cache, or built now (base first if needed)."""
    import docker

    say = progress or (lambda _msg: None)
    started = time.monotonic()
    client = client or docker.from_env(timeout=120)
    digest, base_tag, files = site_recipe(extra_files)
    tag = f"{SITE_REPOSITORY}:{digest[:16]}"
    image = _find(client, tag)
    if image is not None:
        return SiteImage(tag, image.id, digest, base_tag, False, time.monotonic() - started)
    with _build_lock():
        image = _find(client, tag)  # someone else built it while we waited for the lock
        if image is not None:
            return SiteImage(tag, image.id, digest, base_tag, False, time.monotonic() - started)
        if _find(client, base_tag) is None:
            say(f"building the base image {base_tag} with mmdebstrap (about a minute) ...")
            build_base_image(client, base_tag)
        say(f"building the site image {tag} ...")
        image = _build_site(client, tag, base_tag, digest, files, temporary)
        if not temporary:
            _remove_old_site_images(client, keep=image.id)
    return SiteImage(tag, image.id, digest, base_tag, True, time.monotonic() - started)


def mirrors() -> list[str]:
    text = os.environ.get(MIRRORS_ENV, "").strip()
    return [m.strip() for m in text.split(";") if m.strip()] if text else list(DEFAULT_MIRRORS)


def build_base_image(client: Any, tag: str) -> None:
    if shutil.which("mmdebstrap") is None:
        raise ImageError("base image: mmdebstrap is not installed (apt-get install mmdebstrap; "
                         "see ci-support/install-docker.sh)")
    with tempfile.TemporaryDirectory(prefix="edge-conformance-rootfs-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        cmd = ["mmdebstrap", f"--variant={VARIANT}", "--quiet", "--include=" + ",".join(BASE_PACKAGES),
               *[f"--dpkgopt={o}" for o in DPKG_OPTIONS], '--aptopt=Acquire::Retries "3"',
               SUITE, str(tarball), *mirrors()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=MMDEBSTRAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ImageError(f"base image: mmdebstrap took longer than {MMDEBSTRAP_TIMEOUT_S} s") from None
        if done.returncode != 0 or not tarball.is_file():
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-6:])
            raise ImageError(f"base image: mmdebstrap failed (status {done.returncode}): {tail}")
        repository, _, version = tag.partition(":")
        with open(tarball, "rb") as f:
            client.api.import_image(src=f, repository=repository, tag=version,
                                    changes=['CMD ["/bin/sh"]', "ENV LANG=C.UTF-8"])
    if _find(client, tag) is None:
        raise ImageError(f"base image: docker import did not produce {tag}")


def _context(dockerfile_text: str, files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))

        add("Dockerfile", dockerfile_text.encode())
        for name in sorted(files):
            add(f"lib/{name}", files[name], 0o755 if files[name][:4] == b"\x7fELF" else 0o644)
    buf.seek(0)
    return buf


def _build_site(client: Any, tag: str, base_tag: str, digest: str, files: dict[str, bytes], temporary: bool) -> Any:
    import docker

    labels = {LABEL_HARNESS: HARNESS, LABEL_KIND: "site-image", LABEL_RECIPE: digest}
    if temporary:
        labels[LABEL_TEMPORARY] = "1"
    try:
        image, _logs = client.images.build(fileobj=_context(dockerfile(base_tag), files), custom_context=True,
                                           tag=tag, pull=False, rm=True, forcerm=True, labels=labels,
                                           timeout=BUILD_TIMEOUT_S)
    except docker.errors.BuildError as exc:
        lines = [str(x.get("stream") or x.get("error") or "").strip() for x in exc.build_log]
        log = " | ".join(line for line in lines if line)[-800:]
        raise ImageError(f"site image: docker build failed: {exc.msg}: {log}") from None
    except docker.errors.APIError as exc:
        raise ImageError(f"site image: docker build failed: {exc.explanation or exc}") from None
    return image


def _remove_old_site_images(client: Any, keep: str) -> None:
    """Older site images (another recipe) that no container uses: a new build replaces them."""
    import docker

    in_use = {c.image.id for c in client.containers.list(all=True, ignore_removed=True) if c.image is not None}
    for image in client.images.list(filters={"label": [f"{LABEL_HARNESS}={HARNESS}", f"{LABEL_KIND}=site-image"]}):
        if image.id == keep or image.id in in_use or image.labels.get(LABEL_TEMPORARY) == "1":
            continue
        try:
            client.images.remove(image.id, force=False, noprune=False)
        except docker.errors.APIError:
            pass  # in use after all, or already gone


def remove_temporary_images(client: Any) -> list[str]:
    """`emulate down --all`: images built with temporary=True, and dangling layers of our builds."""
    import docker

    removed = []
    for flt in ({"label": [f"{LABEL_HARNESS}={HARNESS}", f"{LABEL_TEMPORARY}=1"]},
                {"label": [f"{LABEL_HARNESS}={HARNESS}"], "dangling": True}):
        for image in client.images.list(filters=flt):
            try:
                client.images.remove(image.id, force=True)
                removed.append(image.id)
            except docker.errors.APIError:
                pass
    return removed


def main(argv: list[str] | None = None) -> int:
    """python -m conformance.emulation.docker.images [--temporary]: build (or find) the site image."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m conformance.emulation.docker.images",
                                     description="Build the docker backend's site image (cached by recipe digest).")
    parser.add_argument("--temporary", action="store_true", help="label it temporary (removed by emulate down --all)")
    args = parser.parse_args(argv)
    try:
        image = ensure_image(temporary=args.temporary, progress=lambda m: print(m, file=sys.stderr, flush=True))
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"tag": image.tag, "id": image.id, "built": image.built, "seconds": round(image.seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
