"""Offline verification of a certification bundle (see bundle.py for what one holds).

`verify_bundle(path, pubkey)` checks, without any network or portal:

1. the archive: regular files under one root folder, no duplicates, no member the manifest does not
   list, every listed member present with the SHA-256 the manifest gives;
2. the signature (manifest.sig over manifest.json, Ed25519) when there is one, and that there is one
   made by the given key when a public key is given;
3. that the members agree with each other: the raw files and target.json with results.json, the
   reports with what this harness renders from results.json (when it is the harness that made them);
4. the verdicts: the embedded profiles are loaded from the bundle (their `extends` resolve to the
   embedded files, shipped names included) and must have the digests the run recorded; every planned
   (requirement, site) must have a result; each result's level, expectation and status must be what
   the profile and what the result recorded give (model.verdict, through model.recompute): every
   status, inconclusive and not-measured included; the run's verdict and counts must be what the
   statuses give;
5. the scope: a run narrowed by its options (--requirement, --site, -k ...) is a partial run. It is
   reported as such, and `verify` exits 3 for it unless asked to accept partial runs.

Without a signature this proves that the bundle is consistent, not who made it: someone who edits a
measured value and everything that follows from it, then recomputes the digests, makes a consistent
bundle. A signature by a key the reviewer knows proves that the vendor's key signed exactly these bytes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .. import __version__
from ..engine.plan import planned_keys
from ..model import recompute as RC
from ..model import results as R
from ..model.boundedio import MAX_JSON_BYTES, parse_json
from ..model.errors import ConfigError
from ..model.target import Site
from ..model.verdict import left_out_by_scope
from ..report.writer import FILES
from . import keys
from .bundle import MANIFEST, SCHEMA, SIGNATURE, same_report, sha256

# A bundle is untrusted input, and its members are held in memory to be checked: a few MiB of gzip can
# hold gigabytes of zeros. The largest member a run writes is results.json or report.html, both
# bounded by what the harness reads back (MAX_JSON_BYTES); the limits refuse a bigger one from its tar
# header, before a byte of it is read.
MAX_MEMBER_BYTES = MAX_JSON_BYTES
MAX_TOTAL_BYTES = 3 * MAX_JSON_BYTES


@dataclass
class Verification:
    bundle: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None
    verdict: str | None = None
    signed_by: str | None = None
    signature_valid: bool = False
    key_matched: bool = False
    results_checked: int = 0
    partial: list[str] = field(default_factory=list)  # what narrowed the run; [] for a full run

    @property
    def ok(self) -> bool:
        return not self.problems

    def exit_code(self, accept_partial: bool = False) -> int:
        """0 everything holds, 1 a mismatch, 3 a consistent but partial run (unless accepted)."""
        if not self.ok:
            return 1
        return 3 if self.partial and not accept_partial else 0

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "ok": self.ok, "partial": bool(self.partial), "narrowed_by": self.partial,
                "run_id": self.run_id, "verdict": self.verdict,
                "signed_by": self.signed_by, "signature_valid": self.signature_valid,
                "key_matched": self.key_matched, "results_checked": self.results_checked,
                "problems": self.problems, "notes": self.notes}

    def render(self) -> str:
        """The text report: one line per problem and note. Everything in it that came from the bundle
        (member names, ids, sites, run id, messages, fingerprints ...) is shown escaped (`shown`), so a
        name holding a newline cannot add a line that reads like the harness's own ("problem: none")."""
        state = "FAILED" if not self.ok else "OK, PARTIAL RUN" if self.partial else "OK"
        lines = [f"{shown(self.bundle)}: {state}"
                 + (f" (run {shown(self.run_id)}, verdict {shown(self.verdict)})" if self.run_id else "")]
        if self.partial:
            lines.append(f"  partial run: narrowed by {shown('; '.join(map(str, self.partial)))}: it certifies only "
                         "what it measured")
        lines += [f"  problem: {shown(p)}" for p in self.problems]
        lines += [f"  note: {shown(n)}" for n in self.notes]
        return "\n".join(lines)


def shown(text: Any) -> str:
    """Text on one line, as printable as its author can make it: control characters (newline, escape ...),
    line and paragraph separators, bidirectional and zero-width format characters, lone surrogates (bytes
    of a member name that are not UTF-8) and the backslash itself are written as Python escapes (\\n,
    \\x1b, \\u202e, \\udcff, \\\\): the output stays one line per problem, and what a name holds is seen."""
    text = str(text)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)


def _escape(c: str) -> str:
    if c == "\\":
        return "\\\\"
    r = repr(c)[1:-1]
    return r if r != c else f"\\u{ord(c):04x}"  # printable to repr (a space other than " "): escape anyway


# ------------------------------------------------------------------------------------------ reading


def _check_sizes(p: Path) -> None:
    """Refuse a bundle bigger than MAX_MEMBER_BYTES a member or MAX_TOTAL_BYTES in all, reading only the
    tar headers (the data in between is decompressed and skipped, never kept)."""
    total = 0
    try:
        with tarfile.open(p, mode="r:*") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                if info.size > MAX_MEMBER_BYTES:
                    raise ConfigError(str(p), None, None, f"bundle too large to verify: member {shown(info.name)} "
                                      f"is {info.size / 2**20:.0f} MiB "
                                      f"(at most {MAX_MEMBER_BYTES // 2**20} MiB a member)")
                total += info.size
                if total > MAX_TOTAL_BYTES:
                    raise ConfigError(str(p), None, None, f"bundle too large to verify: more than "
                                      f"{MAX_TOTAL_BYTES // 2**20} MiB in all")
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return  # an unreadable archive: read_members says so, with the reason


def read_members(path: str | Path) -> tuple[str, dict[str, bytes], list[str]]:
    """(root folder, {name under the root: bytes}, structural problems). ConfigError if unreadable."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), None, None, "no such bundle file")
    problems: list[str] = []
    members: dict[str, bytes] = {}
    roots: set[str] = set()
    total = 0
    _check_sizes(p)  # every header first: nothing is held in memory before the whole is known to fit
    try:
        with tarfile.open(p, mode="r:*") as tar:
            for info in tar:
                name = info.name
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts or not parts:
                    problems.append(f"member {name} has an unsafe path")
                    continue
                if info.isdir():
                    roots.add(parts[0])
                    continue
                if not info.isreg():
                    problems.append(f"member {name} is not a regular file (links and devices are refused)")
                    continue
                if len(parts) < 2:
                    problems.append(f"member {name} is outside the bundle's folder")
                    continue
                roots.add(parts[0])
                if info.size > MAX_MEMBER_BYTES:
                    raise ConfigError(str(p), None, None, f"bundle too large to verify: member {shown(name)} is "
                                      f"{info.size / 2**20:.0f} MiB (at most {MAX_MEMBER_BYTES // 2**20} MiB a member)")
                if total + info.size > MAX_TOTAL_BYTES:
                    raise ConfigError(str(p), None, None, f"bundle too large to verify: more than "
                                      f"{MAX_TOTAL_BYTES // 2**20} MiB in all")
                total += info.size
                rel = "/".join(parts[1:])
                if rel in members:
                    problems.append(f"{rel} appears twice in the archive")
                    continue
                f = tar.extractfile(info)
                members[rel] = f.read() if f else b""
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:  # gzip errors are OSError
        raise ConfigError(str(p), None, None, f"not a readable bundle (tar.gz): {e}") from None
    if len(roots) > 1:
        problems.append(f"members are in more than one folder: {', '.join(sorted(roots))}")
    if not members:
        raise ConfigError(str(p), None, None, "not an edge-conformance bundle: the archive is empty")
    return (sorted(roots)[0] if roots else ""), members, problems


def _json(data: bytes, name: str, problems: list[str]) -> Any:
    """A member as JSON, within the harness's size and depth limits (a bundle is untrusted input)."""
    try:
        return parse_json(data, name)
    except ConfigError as e:
        problems.append(f"{name} is not valid JSON: {e.message}")
        return None


# ------------------------------------------------------------------------------------------ checks


def _check_digests(manifest: dict, members: dict[str, bytes], v: Verification) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        v.problems.append("manifest.json lists no files")
        return
    for name, digest in sorted(files.items()):
        if name not in members:
            v.problems.append(f"{name} is listed in the manifest but missing from the bundle")
        elif sha256(members[name]) != digest:
            v.problems.append(f"{name}: sha256 {sha256(members[name])[:16]}... does not match the manifest "
                              f"({str(digest)[:16]}...): it changed after bundling")
    for name in sorted(members):
        if name not in files and name not in (MANIFEST, SIGNATURE):
            v.problems.append(f"{name} is in the bundle but not listed in the manifest")


def _check_signature(manifest: dict, members: dict[str, bytes], pubkey: keys.PublicKey | None,
                     v: Verification) -> None:
    info = manifest.get("signature")
    sig_data = members.get(SIGNATURE)
    if info is None and sig_data is None:
        if pubkey is not None:
            v.problems.append(f"the bundle is not signed, but a signature by {pubkey.fingerprint} is required "
                              "(--pubkey)")
        else:
            v.notes.append("not signed: this proves the bundle is consistent, not who made it")
        return
    if not isinstance(info, dict):
        v.problems.append("manifest.sig is present but the manifest names no signing key")
        return
    if sig_data is None:
        v.problems.append(f"the manifest names signing key {info.get('key_fingerprint')} but manifest.sig is missing")
        return
    if info.get("algorithm") != "ed25519":
        v.problems.append(f"unknown signature algorithm {info.get('algorithm')!r} (expected ed25519)")
        return
    try:
        raw = base64.b64decode(str(info.get("public_key", "")), validate=True)
        signature = base64.b64decode(sig_data.strip(), validate=True)
    except (binascii.Error, ValueError):
        v.problems.append("the signature or the manifest's public key is not valid base64")
        return
    fp = keys.fingerprint(raw)
    v.signed_by = fp
    if fp != info.get("key_fingerprint"):
        v.problems.append(f"the manifest's public key has fingerprint {fp}, not {info.get('key_fingerprint')}")
        return
    if pubkey is not None and pubkey.fingerprint != fp:
        v.problems.append(f"signed by key {fp}, not by the given key {pubkey.fingerprint}")
        return
    check_key = pubkey.raw if pubkey is not None and pubkey.raw is not None else raw
    if len(check_key) != 32 or not keys.signature_ok(check_key, signature, members[MANIFEST]):
        v.problems.append(f"bad signature: manifest.sig does not match manifest.json for key {fp} "
                          "(the manifest changed after signing, or another key signed it)")
        return
    v.signature_valid = True
    if pubkey is not None:
        v.key_matched = True
        v.notes.append(f"signed by {fp} (the given key)")
    else:
        v.notes.append(f"signed by {fp}; give --pubkey to check it is the key you expect")


def _check_copies(manifest: dict, results: dict, members: dict[str, bytes], v: Verification) -> None:
    entries = {(r.get("profile"), r.get("id"), r.get("site")): r for r in results.get("requirements") or []
               if isinstance(r, dict)}
    covered = set()
    for item in manifest.get("raw") or []:
        name = item.get("file")
        key = (item.get("profile"), item.get("id"), item.get("site"))
        if name not in members:
            continue  # reported by the digest check
        doc = _json(members[name], name, v.problems)
        entry = entries.get(key)
        if entry is None:
            v.problems.append(f"{name}: no such result in results.json")
            continue
        covered.add(key)
        if not isinstance(doc, dict):
            continue
        for k in ("profile", "id", "site", "status", "measured", "raw"):
            if doc.get(k) != entry.get(k):
                v.problems.append(f"{name}: {k} differs from results.json ({item.get('id')}@{item.get('site')})")
    for key, entry in entries.items():
        if (entry.get("raw") or entry.get("measured")) and key not in covered:
            v.problems.append(f"{key[1]}@{key[2]}: its raw measurements file is missing from the bundle")
    if "target.json" in members:
        if _json(members["target.json"], "target.json", v.problems) != results.get("target"):
            v.problems.append("target.json differs from the target in results.json")
    made_by = (manifest.get("made_by") or {}).get("version")
    if made_by != __version__:
        v.notes.append(f"reports not compared with results.json: made by harness {made_by}, this is {__version__}")
        return
    from ..report.writer import render

    for fmt, name in FILES.items():
        if name not in members:
            v.problems.append(f"{name} is missing from the bundle")
            continue
        try:
            expected = render(results, fmt)
        except Exception as e:  # noqa: BLE001 - a results.json we cannot render is reported, not raised
            v.problems.append(f"{name}: cannot render results.json to compare ({type(e).__name__}: {e})")
            continue
        got = members[name].decode("utf-8", errors="replace")
        if not same_report(got, expected):
            v.problems.append(f"{name} does not match results.json (a report was edited, or results.json was)")


def _schema_problems(results: dict) -> list[str]:
    import jsonschema

    from ..model.paths import schemas_dir

    schema = json.loads((schemas_dir() / "results.schema.json").read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(results), key=lambda e: list(e.path))
    out = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.path) or "(top)"
        out.append(f"results.json: {where}: {e.message[:200]}")
    if len(errors) > 5:
        out.append(f"results.json: {len(errors) - 5} more schema errors")
    return out


def embedded_resolver(mapping: dict[tuple[str | None, str], Path]):
    """A profile resolver (model.profile.load_profile's `resolver`) to files extracted from a bundle,
    and nowhere else.

    Keys are (directory of the extending file, reference as written) and (None, top-level path).
    A shipped name such as `extends: edge-baseline` must resolve to the embedded copy, not to the
    profile installed on the reviewer's machine.
    """

    def resolve(ref: str, relative_to: Path | None = None) -> Path:
        key = (str(Path(relative_to).resolve()) if relative_to is not None else None, ref)
        if key in mapping:
            return mapping[key]
        raise ConfigError(None, None, None, f'profile "{ref}" is not in the bundle')

    return resolve


def load_embedded_profiles(manifest: dict, members: dict[str, bytes], workdir: Path, v: Verification) -> list:
    from ..model.profile import load_profile

    loaded = []
    for i, item in enumerate(manifest.get("profiles") or []):
        chain = item.get("chain") or []
        if not chain:
            v.problems.append(f"profile {item.get('id')}: the manifest lists no files for it")
            continue
        mapping: dict[tuple[str | None, str], Path] = {}
        paths: list[Path] = []
        for n, f in enumerate(chain):
            name = f.get("file")
            if name not in members:
                v.problems.append(f"profile {item.get('id')}: {name} is missing from the bundle")
                break
            d = workdir / f"p{i}" / str(n)
            d.mkdir(parents=True, exist_ok=True)
            path = (d / re.sub(r"[^A-Za-z0-9._-]", "_", PurePosixPath(name).name)).resolve()
            path.write_bytes(members[name])
            if n == 0:
                mapping[(None, str(path))] = path
            else:
                mapping[(str(paths[-1].parent), str(f.get("ref")))] = path
            paths.append(path)
        else:
            try:
                profile = load_profile(str(paths[0]), resolver=embedded_resolver(mapping), check_citations=False)
            except ConfigError as e:
                v.problems.append(f"profile {item.get('id')}: the embedded files do not load: {e}")
                continue
            if profile.id != item.get("id"):
                v.problems.append(f"profile {item.get('id')}: the embedded file is profile {profile.id}")
                continue
            if profile.sha256 != item.get("sha256"):
                v.problems.append(f"profile {profile.id}: the embedded files have digest {profile.sha256[:16]}..., "
                                  f"the run recorded {str(item.get('sha256'))[:16]}...")
                continue
            loaded.append(profile)
    return loaded


def _run_dates(results: dict) -> dict[tuple, tuple[dt.date, dt.date]]:
    """Per (profile, id, site) the date range of the run that produced it (reruns included)."""

    def rng(stamp: Any) -> tuple[dt.date, dt.date] | None:
        try:
            d = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone(dt.UTC).date()
        except ValueError:
            return None
        return d - dt.timedelta(days=1), d + dt.timedelta(days=1)  # the plugin used the local date

    base = rng(results.get("started")) or (dt.date.today(), dt.date.today())
    out: dict[tuple, tuple[dt.date, dt.date]] = {("*",): base}
    for shard in results.get("shards") or []:  # a merged run: each site's results came from its shard
        r = rng(shard.get("started")) if isinstance(shard, dict) else None
        sites = set(shard.get("sites") or []) if isinstance(shard, dict) else set()
        for e in results.get("requirements") or []:
            if r and isinstance(e, dict) and e.get("site") in sites:
                out[(e.get("profile"), e.get("id"), e.get("site"))] = r
    for rerun in results.get("reruns") or []:
        r = rng(rerun.get("started"))
        for e in rerun.get("entries") or []:
            if r and isinstance(e, dict):
                out[(e.get("profile"), e.get("id"), e.get("site"))] = r
    return out


def check_results(results: dict, profiles: list, waivers: list | None, v: Verification,
                  compare_messages: bool) -> None:
    """Every planned result present, each consistent with its requirement, verdict and counts right."""
    reqs = [r for r in results.get("requirements") or [] if isinstance(r, dict)]
    by_key: dict[tuple, Any] = {}
    for p in profiles:
        for r in p.requirements:
            by_key.setdefault((r.profile, r.id), r)
    options = results.get("options") or {}
    # Every (requirement, site) the run planned (engine/plan.py), also those its options left out (they
    # are recorded as not-measured); a requirement no site can take is planned at NO_SITE.
    sites = [Site(name=s.get("name"), role=s.get("role")) for s in (results.get("target") or {}).get("sites") or []
             if isinstance(s, dict)]
    planned = planned_keys(profiles, sites)
    seen: set[tuple] = set()
    dates = _run_dates(results)
    for e in reqs:
        key = (e.get("profile"), e.get("id"), e.get("site"))
        label = f"{key[1]}@{key[2]}"
        if key in seen:
            v.problems.append(f"{label}: appears twice in results.json")
            continue
        seen.add(key)
        requirement = by_key.get((key[0], key[1]))
        if requirement is None:
            v.problems.append(f"{label}: profile {key[0]} in the bundle has no requirement {key[1]}")
            continue
        if key not in planned:
            v.problems.append(f"{label}: the profile does not apply {key[1]} to site {key[2]} in this run")
        v.results_checked += 1
        if RC.is_fleet_entry(e):
            v.problems += RC.check_fleet_entry(e, requirement, reqs)
            continue
        if bool(e.get("fleet_member")) != (requirement.quorum is not None):
            v.problems.append(f"{label}: results say fleet_member = {str(bool(e.get('fleet_member'))).lower()}, "
                              f"the profile gives {key[1]} {'a' if requirement.quorum is not None else 'no'} quorum")
        v.problems += RC.check_entry(e, requirement, waivers=waivers, on=dates.get(key, dates[("*",)]),
                                     compare_messages=compare_messages)
    for key in planned:
        if key not in seen:
            v.problems.append(f"{key[1]}@{key[2]}: the profile plans it, but results.json has no result for it")

    strict = bool(options.get("strict"))
    verdict = R.run_verdict(reqs, strict) if all(e.get("status") in R.STATUSES for e in reqs) else None
    if verdict and results.get("verdict") != verdict:
        v.problems.append(f"run: results say {results.get('verdict')}, the statuses give {verdict}"
                          + (" (with --strict)" if strict else ""))
    counts = R.counts(reqs) if verdict else None
    if counts and results.get("counts") is not None and results.get("counts") != counts:
        diff = ", ".join(f"{k} {results['counts'].get(k)} (statuses give {n})" for k, n in counts.items()
                         if results["counts"].get(k) != n)
        v.problems.append(f"run: counts differ from the statuses: {diff}")


# ------------------------------------------------------------------------------------------ main


def verify_bundle(path: str | Path, pubkey: str | Path | None = None) -> Verification:
    """Check a bundle; ConfigError when it cannot be read at all (exit 2), else a Verification."""
    expected_key = keys.load_public_key(pubkey) if pubkey else None
    v = Verification(bundle=str(path))
    _, members, structural = read_members(path)
    v.problems += structural
    if MANIFEST not in members:
        raise ConfigError(str(path), None, None, "not an edge-conformance bundle: no manifest.json")
    manifest = _json(members[MANIFEST], MANIFEST, v.problems)
    if not isinstance(manifest, dict):
        v.problems.append("manifest.json is not a JSON object")
        return v
    if manifest.get("schema") != SCHEMA:
        v.problems.append(f"manifest.json: unknown bundle schema {manifest.get('schema')!r} "
                          f"(this harness reads {SCHEMA})")
        return v
    _check_digests(manifest, members, v)
    _check_signature(manifest, members, expected_key, v)

    if "results.json" not in members:
        v.problems.append("results.json is missing from the bundle")
        return v
    results = _json(members["results.json"], "results.json", v.problems)
    if not isinstance(results, dict):
        return v
    v.run_id, v.verdict = results.get("run_id"), results.get("verdict")
    if results.get("schema") in R.LEGACY_SCHEMAS:
        v.problems.append(f"results.json: schema {results.get('schema')} (an earlier harness) records a skip the "
                          "same way whether the requirement did not apply or could not be measured, so its "
                          f"verdict cannot be recomputed; re-run with this harness ({R.SCHEMA})")
        return v
    if results.get("schema") != R.SCHEMA:
        v.problems.append(f"results.json: unknown results schema {results.get('schema')!r}")
        return v
    v.problems += _schema_problems(results)
    run = manifest.get("run") or {}
    for k in ("run_id", "verdict", "state"):
        if run.get(k) != results.get(k):
            v.problems.append(f"manifest says {k} {run.get(k)!r}, results.json says {results.get(k)!r}")
    _check_copies(manifest, results, members, v)

    run_ids = [p.get("id") for p in results.get("profiles") or []]
    manifest_ids = [p.get("id") for p in manifest.get("profiles") or []]
    if run_ids != manifest_ids:
        v.problems.append(f"results.json ran profiles {run_ids}, the bundle embeds {manifest_ids}")
    recorded = {p.get("id"): p.get("sha256") for p in results.get("profiles") or []}
    for p in manifest.get("profiles") or []:
        if recorded.get(p.get("id")) != p.get("sha256"):
            v.problems.append(f"profile {p.get('id')}: the manifest's digest differs from the one results.json records")

    with tempfile.TemporaryDirectory(prefix="edge-verify-") as tmp:
        workdir = Path(tmp)
        profiles = load_embedded_profiles(manifest, members, workdir, v)
        # the run's waivers: none without a waivers file; unknown (None) if the file is not in the bundle
        waivers = None if (results.get("options") or {}).get("waivers") else []
        if manifest.get("waivers") and manifest["waivers"] in members:
            from ..model.waivers import load_waivers

            wpath = workdir / "waivers.yaml"
            wpath.write_bytes(members[manifest["waivers"]])
            try:
                waivers = [w.to_dict() for w in load_waivers(wpath)]
            except ConfigError as e:
                v.problems.append(f"waivers.yaml does not load: {e}")
    if len(profiles) == len(manifest.get("profiles") or []) and profiles:
        same_harness = (results.get("harness") or {}).get("version") == __version__
        if not same_harness:
            v.notes.append(f"messages not compared: the run used harness "
                           f"{(results.get('harness') or {}).get('version')}, this is {__version__}")
        check_results(results, profiles, waivers, v, compare_messages=same_harness)
    elif not v.problems:
        v.problems.append("no profile could be loaded from the bundle: verdicts not recomputed")
    v.partial = partial_run(results)
    scope = results.get("scope") if isinstance(results.get("scope"), dict) else {}
    if scope.get("changed_by"):
        v.notes.append(f"the run was changed by {'; '.join(map(str, scope['changed_by']))}")
    if v.ok:
        v.notes.insert(0, f"{v.results_checked} results recomputed from what they recorded and the embedded "
                          f"profiles; verdict {v.verdict} holds")
    return v


def partial_run(results: dict) -> list[str]:
    """What narrowed the run, from its scope and from its results ([] for a full run). Both are read: a
    scope edited to say `full` still has its left-out results, which verify recomputes as not-measured."""
    scope = results.get("scope") if isinstance(results.get("scope"), dict) else {}
    narrowed = [str(n) for n in scope.get("narrowed_by") or []]
    if not scope:
        narrowed.append("the run recorded no scope")
    elif scope.get("full") is not True and not narrowed:
        narrowed.append("the scope says the run was not full")
    for e in results.get("requirements") or []:
        if isinstance(e, dict) and left_out_by_scope(e.get("ended")) and "results left out" not in narrowed:
            narrowed.append("results left out")
    return narrowed


def verification_json(v: Verification) -> str:
    """As JSON (strings escaped by JSON itself). ASCII only: a member name with bytes that are not UTF-8
    holds lone surrogates, which UTF-8 output cannot carry (\\udcff is written instead)."""
    return json.dumps(v.to_dict(), indent=2, sort_keys=True, ensure_ascii=True) + "\n"
