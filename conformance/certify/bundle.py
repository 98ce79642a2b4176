"""Certification bundles: one tar.gz with everything a reviewer needs to check a run offline.

    edge-conformance-<run-id>/
      manifest.json          SHA-256 of every other member; the profiles' chains; the signer's key
      manifest.sig           Ed25519 signature of manifest.json (base64), when signed
      results.json           the run's record, byte for byte
      junit.xml summary.md report.html   rendered from results.json when the bundle is made
      raw/<id>@<site>.json   each result's measured values and raw measurements (histograms ...)
      profiles/<id>/<n>/<file>.yaml      every file of each profile's extends chain, as run
      topology/<name>.yaml   the emulated topology, when the target was emulated (a built-in)
      waivers.yaml           the waivers file the run used, if any
      target.json            the target as results.json records it (credentials only as ${ENV})
      environment.json       harness version, python, platform, dependency versions, cpus, suites digest

The archive is deterministic: members in a fixed order, mtimes set to the run's end, no owner names,
gzip without a timestamp; bundling the same results twice (and signing with the same key, Ed25519 is
deterministic) gives the same bytes. `verify.verify_bundle` checks one.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import platform
import re
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from .. import __version__
from ..model.boundedio import MAX_YAML_BYTES, read_input
from ..model import secrets as S
from ..model.errors import ConfigError
from ..model.yamlfile import parse_yaml
from ..model.paths import profiles_dir, suites_dir
from ..model.profile import load_profile, resolve_ref
from ..model.target import ENV_REF
from ..report.writer import FILES, OutputKind, check_output_path, read_results, render, write_output
from . import keys

SCHEMA = "edge-conformance/bundle/v1"
ROOT_PREFIX = "edge-conformance-"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MIN_SECRET_LENGTH = S.MIN_SECRET_LENGTH  # shorter values (ports, "true") would be found everywhere
_SAFE = re.compile(r"[^A-Za-z0-9._@+-]")


@dataclass
class Bundle:
    path: Path
    run_id: str
    members: list[str]
    signed_by: str | None = None  # key fingerprint
    warnings: list[str] = field(default_factory=list)


@dataclass
class ChainFile:
    path: Path  # where it is on this machine
    ref: str | None  # how the file before it in the chain named it (extends: ...); None for the profile
    sha256: str


# ------------------------------------------------------------------------------------------ helpers


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_name(text: str) -> str:
    return _SAFE.sub("_", str(text)) or "_"


def root_dir(run_id: str) -> str:
    return ROOT_PREFIX + safe_name(run_id)


def find_results(path: str | Path) -> Path:
    """RESULTS_DIR (holding results.json) or a results.json itself."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise ConfigError(str(p), None, None, "no results.json here (give the run's output directory)")
    return p


def chain_files(top: Path) -> list[ChainFile]:
    """The profile file and every file it extends, in order, with their real paths."""
    out, seen, path, ref = [], set(), top, None
    while True:
        key = str(path.resolve())
        if key in seen:  # load_profile reports cycles; never loop here
            break
        seen.add(key)
        data = read_input(path, limit=MAX_YAML_BYTES, what="profile")
        out.append(ChainFile(path, ref, sha256(data)))
        doc = parse_yaml(data.decode("utf-8", "replace"), str(path)).data  # bounded: aliases, depth, size
        ref = doc.get("extends") if isinstance(doc, dict) else None
        if not ref:
            return out
        path = resolve_ref(str(ref), relative_to=path.parent)
    return out


def _candidates(entry: dict, results_dir: Path, hints: list[Path]) -> list[Path]:
    source = str(entry.get("source") or "")
    pid = str(entry.get("id") or "")
    out: list[Path] = []
    for h in hints:
        out.append(h)
    if source:
        s = Path(source)
        if s.is_absolute():
            out.append(s)
        else:
            # relative to where the run was started: here, or (--out DIR below it) an ancestor of DIR;
            # only a file with the recorded digest is taken, so trying several places is safe
            out += [Path.cwd() / s] + [d / s for d in [results_dir, *results_dir.resolve().parents][:4]]
            if source.startswith("profiles/"):  # how a shipped profile is shown outside a checkout
                out.append(profiles_dir() / source.removeprefix("profiles/"))
    if pid:
        out.append(profiles_dir() / f"{pid}.yaml")
    seen, unique = set(), []
    for p in out:
        if p.is_file() and str(p.resolve()) not in seen:
            seen.add(str(p.resolve()))
            unique.append(p)
    return unique


def locate_profile(entry: dict, results_dir: Path, hints: list[Path] = (), purpose: str = "bundle"
                   ) -> tuple[Any, list[ChainFile]]:
    """The profile file (and chain) whose digest is the one results.json recorded for `entry`.

    Raises ConfigError when it cannot be found, or when the file found has changed since the run.
    """
    want = entry.get("sha256")
    pid = entry.get("id")
    tried = []
    for path in _candidates(entry, results_dir, list(hints)):
        try:
            profile = load_profile(str(path))
        except ConfigError as exc:
            tried.append(f"{path} ({exc})")
            continue
        if profile.id != pid:
            continue
        if profile.sha256 == want:
            files = chain_files(path)
            if [f.sha256 for f in files] != [c.sha256 for c in profile.chain]:  # pragma: no cover
                raise ConfigError(str(path), None, None, "the profile's extends chain changed while bundling")
            return profile, files
        changed = [f"{c.path} (sha256 now {c.sha256[:12]})" for c in profile.chain]
        tried.append(f"{path}: changed since the run (chain digest now {profile.sha256[:12]}, the run used "
                     f"{str(want)[:12]}; files: {', '.join(changed)})")
    if tried:
        raise ConfigError(str(entry.get("source")), None, None,
                          f"profile {pid}: no file matches the digest the run recorded; refusing to {purpose} "
                          f"with a different profile than the one that was run. " + "; ".join(tried))
    raise ConfigError(str(entry.get("source")), None, None,
                      f"profile {pid}: file not found ({purpose} from the directory the run was started in, "
                      f"or give --profile PATH)")


def environment() -> dict:
    """The bundling machine: harness, python, platform, dependency versions, cpus, suites digest."""
    from importlib import metadata

    packages: dict[str, str | None] = {}
    try:
        requires = metadata.requires("edge-conformance") or []
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        requires = []
    names = sorted({re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r}
                   | {"cryptography"})
    for name in names:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    suite_files = {}
    root = suites_dir()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".ini", ".yaml", ".yml"):
            suite_files[p.relative_to(root).as_posix()] = sha256(p.read_bytes())
    return {
        "harness": {"name": "edge-conformance", "version": __version__},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable_version": sys.version.split()[0]},
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                     "platform": platform.platform()},
        "cpu_count": os.cpu_count(),
        "packages": packages,
        "suites": {"digest": sha256("".join(f"{k}:{v}\n" for k, v in suite_files.items()).encode()),
                   "files": suite_files},
    }


@dataclass
class Secrets:
    """The credentials of the run's target, as far as the bundling environment can tell them."""

    values: dict[str, str] = field(default_factory=dict)  # variable -> value, looked for in every member
    unset: list[str] = field(default_factory=list)  # referred to but not set here: their values are unknown
    short: list[str] = field(default_factory=list)  # set, but too short to look for without matching everywhere
    unread: str | None = None  # the target file, when it could not be read for the variables it refers to


def secret_references(results: dict, results_dir: Path | None = None) -> Secrets:
    """The environment variables the run's target refers to (its credentials, `${NAME}` anywhere in the
    target file: hooks, endpoints) and, for each, whether its value is known here."""
    names: set[str] = set()
    out = Secrets()
    target = results.get("target") if isinstance(results.get("target"), dict) else {}
    for site in target.get("sites") or []:
        for ref in ((site.get("credentials") or {}) if isinstance(site, dict) else {}).values():
            names.update(ENV_REF.findall(str(ref)))
    tpath = target.get("path")
    if tpath and target.get("kind") != "emulated":
        p = Path(str(tpath))
        cands = [p] if p.is_absolute() else [Path.cwd() / p] + [d / p for d in (
            [results_dir, *results_dir.resolve().parents][:4] if results_dir else [])]
        for cand in cands:
            try:
                names.update(ENV_REF.findall(read_input(cand, limit=MAX_YAML_BYTES, what="target").decode("utf-8")))
                break
            except (ConfigError, UnicodeDecodeError):
                continue
        else:
            out.unread = str(tpath)
    for n in sorted(names):
        v = os.environ.get(n)
        if v is None:
            out.unset.append(n)
        elif len(v) < MIN_SECRET_LENGTH:
            if v:
                out.short.append(n)
        else:
            out.values[n] = v
    return out


def check_secrets(secrets: Secrets, *, secret_check: bool, where: str, warnings: list[str]) -> None:
    """Refuse to bundle when a credential's value cannot be known here, unless told not to check.

    The scan below can only look for values it knows. A variable the target names but the bundling
    environment does not set (a CI job that bundles in another step, a shell without the vendor's
    .env) has a value the run used and the bundle may hold (a note, a message, an error echoed by
    the target): bundling anyway would say "no secret found" without having looked. So that is refused,
    naming the variables; `--no-secret-check` bundles anyway, with a warning naming what was not
    looked for (the values that are known are still looked for). Values shorter than
    MIN_SECRET_LENGTH would match everywhere: they are not looked for, and a warning says so."""
    unknown = [f"${{{n}}}" for n in secrets.unset]
    why = []
    if unknown:
        why.append(f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not set here")
    if secrets.unread:
        why.append(f"the target file {secrets.unread} cannot be read for the variables it refers to")
    if why and secret_check:
        raise ConfigError(where, None, "target", f"{'; '.join(why)}, so the bundle cannot be checked for the "
                          "credentials' values: bundle where the run's credentials are set (and its target file "
                          "is), or give --no-secret-check to bundle without that check")
    if why:
        warnings.append(f"--no-secret-check: {'; '.join(why)}: the bundle was not checked for "
                        f"{'their values' if unknown else 'the values of the variables that file refers to'}")
    for n in secrets.short:
        warnings.append(f"${{{n}}} is shorter than {MIN_SECRET_LENGTH} characters: its value was not looked for")


def _secret_values(results: dict) -> dict[str, str]:
    """Values of the environment variables the run's target refers to (its credentials)."""
    return secret_references(results).values


def scan_secrets(members: dict[str, bytes], secrets: dict[str, str]) -> None:
    """Refuse a member holding a known secret value in any form (as is, JSON-escaped, HTML-escaped):
    a signed bundle cannot be redacted afterwards. The run itself redacts what it writes
    (model/secrets.py), so this finds only what reached the output directory some other way."""
    for name, data in members.items():
        var = S.find(data, secrets)
        if var is not None:
            raise ConfigError(name, None, None, f"contains the value of ${{{var}}}, a credential of the target; "
                                                "refusing to put a secret in a bundle")


def _epoch(results: dict) -> int:
    for key in ("finished", "started"):
        v = results.get(key)
        if isinstance(v, str):
            try:
                return max(0, int(dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()))
            except ValueError:
                continue
    return 0


def _waivers_file(results: dict, results_dir: Path, hint: Path | None, warnings: list[str]) -> bytes | None:
    ref = (results.get("options") or {}).get("waivers")
    applied = (results.get("waivers") or {}).get("applied") or []
    if not ref and not hint:
        return None
    cands = [hint] if hint else [Path(ref), results_dir / ref] if not Path(ref).is_absolute() else [Path(ref)]
    path = next((p for p in cands if p and p.is_file()), None)
    if path is None:
        if applied:
            raise ConfigError(str(ref), None, None, "the run's waivers file is not found and the run applied "
                                                    "waivers (bundle from the run's directory or give --waivers PATH)")
        warnings.append(f"waivers file {ref} not found; not included (the run applied no waiver)")
        return None
    data = path.read_bytes()
    from ..model.waivers import load_waivers

    have = [w.to_dict() for w in load_waivers(path)]
    for w in applied:
        if not any(all(str(w.get(k)) == str(h.get(k)) for k in ("id", "reason", "who", "expires"))
                   and h["site"] in ("all", w.get("site")) for h in have):
            raise ConfigError(str(path), None, None, f"waiver for {w.get('id')}@{w.get('site')} that the run applied "
                                                     "is not in this file any more: it changed since the run")
    return data


def _topology(results: dict, warnings: list[str]) -> tuple[str, bytes] | None:
    target = results.get("target") or {}
    name = target.get("topology") or (target.get("emulation") or {}).get("topology")
    if target.get("kind") != "emulated" or not name:
        return None
    from ..model.topology import generated_topology, topologies_dir

    path = topologies_dir() / f"{name}.yaml"
    if path.is_file():
        return name, path.read_bytes()
    generated = re.fullmatch(r"fleet-(\d+)", str(name))  # fleet:N names its topology fleet-N
    if generated:
        return name, (generated_topology(f"fleet:{generated[1]}") or "").encode()
    warnings.append(f"topology {name} is not a built-in topology; not included")
    return None


# ------------------------------------------------------------------------------------------ bundle


_NONCE = re.compile(r"nonce(-|=\")[A-Za-z0-9_\-+/=]+")


def same_report(a: str, b: str) -> bool:
    """Equal but for the HTML report's per-page CSP nonce."""
    return _NONCE.sub(r"nonce\1", a) == _NONCE.sub(r"nonce\1", b)


def _report(results: dict, fmt: str, existing: Path, warnings: list[str]) -> bytes:
    """The report rendered from results.json; the run's own file when it is the same (so bundling
    the same run twice gives the same bytes: the HTML report's nonce is random)."""
    fresh = render(results, fmt)
    try:
        old = existing.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return fresh.encode("utf-8")
    if same_report(old, fresh):
        return old.encode("utf-8")
    warnings.append(f"{existing.name} did not match results.json; the bundle has it rendered again")
    return fresh.encode("utf-8")


def collect(results_path: Path, *, profile_hints: list[Path] = (), waivers_hint: Path | None = None,
            secret_check: bool = True) -> tuple[dict, dict[str, bytes], dict, list[str]]:
    """(results, members {name: bytes} without the manifest, manifest without files, warnings)."""
    results, text = read_results(results_path, legacy=False)
    results_bytes = text.encode("utf-8")  # the bytes that were read (UTF-8 checked), byte for byte
    del text
    results_dir = results_path.parent
    warnings: list[str] = []
    secrets = secret_references(results, results_dir)  # before any work: an unknown value is refused now
    check_secrets(secrets, secret_check=secret_check, where=str(results_path), warnings=warnings)
    if results.get("state") != "finished":
        warnings.append(f"the run's state is {results.get('state')}: some results may be not-run")

    members: dict[str, bytes] = {"results.json": results_bytes}
    for fmt, name in FILES.items():
        members[name] = _report(results, fmt, results_dir / name, warnings)

    raw_index = []
    used: set[str] = set()
    for r in results.get("requirements") or []:
        if not r.get("raw") and not r.get("measured"):
            continue
        name = f"raw/{safe_name(r.get('id'))}@{safe_name(r.get('site'))}.json"
        if name in used:
            name = f"raw/{safe_name(r.get('id'))}@{safe_name(r.get('site'))}~{safe_name(r.get('profile'))}.json"
        used.add(name)
        members[name] = dumps({k: r.get(k) for k in ("profile", "id", "site", "status", "measured", "raw")})
        raw_index.append({"file": name, "profile": r.get("profile"), "id": r.get("id"), "site": r.get("site")})

    profiles_index = []
    for entry in results.get("profiles") or []:
        _, files = locate_profile(entry, results_dir, list(profile_hints))
        chain = []
        for n, f in enumerate(files):
            name = f"profiles/{safe_name(entry.get('id'))}/{n}/{safe_name(f.path.name)}"
            members[name] = f.path.read_bytes()
            chain.append({"file": name, "ref": f.ref, "sha256": f.sha256})
        profiles_index.append({"id": entry.get("id"), "version": entry.get("version"), "sha256": entry.get("sha256"),
                               "source": entry.get("source"), "chain": chain})

    topo = _topology(results, warnings)
    if topo:
        members[f"topology/{safe_name(topo[0])}.yaml"] = topo[1]
    waivers = _waivers_file(results, results_dir, waivers_hint, warnings)
    if waivers is not None:
        members["waivers.yaml"] = waivers
    members["target.json"] = dumps(results.get("target"))
    members["environment.json"] = dumps(environment())

    manifest = {
        "schema": SCHEMA,
        "made_by": {"name": "edge-conformance", "version": __version__},
        "run": {k: results.get(k) for k in ("run_id", "verdict", "state", "started", "finished")}
               | {"harness": results.get("harness"), "counts": results.get("counts")},
        "profiles": profiles_index,
        "raw": raw_index,
        "topology": {"name": topo[0], "file": f"topology/{safe_name(topo[0])}.yaml"} if topo else None,
        "waivers": "waivers.yaml" if waivers is not None else None,
    }
    scan_secrets(members, secrets.values)
    return results, members, manifest, warnings


def write_tar(path: Path, root: str, members: list[tuple[str, bytes]], mtime: int, *,
              protect: list[Path] = ()) -> Path:
    """The deterministic tar.gz, written atomically (mode 0644) after check_output_path's refusals."""

    def fill(raw) -> None:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(f"{root}/{name}")
                info.size = len(data)
                info.mtime = mtime
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))

    return write_output(path, fill, protect=protect, kind=BUNDLE)


def make_bundle(results: str | Path, out: str | Path | None = None, sign_key: str | Path | None = None, *,
                profile_hints: list[str | Path] = (), waivers_hint: str | Path | None = None,
                secret_check: bool = True) -> Bundle:
    """Bundle the run in `results` (its directory or its results.json) into one tar.gz.

    `secret_check=False` (--no-secret-check) bundles even when a credential the target names is not set
    here, so that its value cannot be looked for (see check_secrets); the bundle's warnings say so."""
    results_path = find_results(results)
    if out is not None and not Path(out).is_dir():
        check_output_path(Path(out), protect=[results_path], kind=BUNDLE)  # refused before any work
    private = keys.load_private_key(sign_key) if sign_key else None  # a bad key fails before any work
    data, members, manifest, warnings = collect(results_path, profile_hints=[Path(p) for p in profile_hints],
                                                waivers_hint=Path(waivers_hint) if waivers_hint else None,
                                                secret_check=secret_check)
    run_id = str(data.get("run_id") or "run")
    manifest["files"] = {name: sha256(members[name]) for name in sorted(members)}
    fingerprint = None
    if private is not None:
        raw = keys.raw_public(private)
        fingerprint = keys.fingerprint(raw)
        manifest["signature"] = {"algorithm": "ed25519", "key_fingerprint": fingerprint,
                                 "public_key": base64.b64encode(raw).decode("ascii"), "file": SIGNATURE}
    manifest_bytes = dumps(manifest)
    ordered = [(MANIFEST, manifest_bytes)]
    if private is not None:
        sig = keys.sign(private, manifest_bytes)
        ordered.append((SIGNATURE, base64.b64encode(sig) + b"\n"))
    ordered += [(name, members[name]) for name in sorted(members)]
    target = Path(out) if out else results_path.parent / f"{root_dir(run_id)}.tar.gz"
    if target.is_dir():
        target = target / f"{root_dir(run_id)}.tar.gz"
    write_tar(target, root_dir(run_id), ordered, _epoch(data), protect=[results_path])
    return Bundle(target, run_id, [n for n, _ in ordered], fingerprint, warnings)


def _is_bundle_file(path: Path) -> bool:
    """A gzip'd tar whose first member is in an edge-conformance-<run-id> folder (what write_tar makes)."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                return False
        with tarfile.open(path, mode="r:gz") as tar:
            first = tar.next()
    except (OSError, tarfile.TarError, EOFError, ValueError):
        return False
    return first is not None and first.name.startswith(ROOT_PREFIX)


# Where a bundle may be written (writer.check_output_path): an existing file there is replaced only when it
# is an earlier bundle; a directory is only refused once the bundle's own name was added to it.
BUNDLE = OutputKind(
    what=" the bundle", on_directory="",
    on_protected="is the run's results.json: the bundle would replace what was measured; give another file name",
    replaceable=_is_bundle_file,
    on_other="exists and is not a bundle: refusing to replace it (give a new file name, or remove that file first)")


def bundle_run(out_dir: str | Path, sign_key: str | Path | None = None, out: str | Path | None = None) -> Bundle:
    """For `run --bundle`: bundle the run just written into out_dir (next to its results.json)."""
    return make_bundle(Path(out_dir), out=out, sign_key=sign_key)
