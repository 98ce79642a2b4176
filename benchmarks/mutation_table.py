"""Regenerate the generated sections of docs/profiles.md: the traceability table (from the shipped
profiles) and the mutation table (from a run of tests/profiles/test_mutation.py).

    python benchmarks/mutation_table.py            # traceability only; the mutation table as it is
    python benchmarks/mutation_table.py --run      # also run the mutation test (~6-10 min on 2 cores)
    python benchmarks/mutation_table.py --table mutation-table.md   # splice a table a CI run wrote

The mutation test writes its table to the file named by EDGE_MUTATION_TABLE. Prints one JSON line:
{"profiles", "requirements", "mutation_table": "updated" | "unchanged", "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "profiles.md"
MARKS = {
    "trace": ("<!-- BEGIN traceability (benchmarks/mutation_table.py) -->", "<!-- END traceability -->"),
    "mutation": ("<!-- BEGIN mutation table (benchmarks/mutation_table.py) -->", "<!-- END mutation table -->"),
}


def _cell(text: str, limit: int = 0) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if not limit or len(text) <= limit else text[:limit - 1] + "…"


def traceability() -> tuple[str, int, int]:
    sys.path.insert(0, str(ROOT))
    from conformance.model.profile import list_profiles, load_profile

    lines, count = [], 0
    profiles = [load_profile(str(p)) for p in list_profiles()]
    for p in profiles:
        own = [r for r in p.requirements if r.profile == p.id]
        if not own:
            continue
        lines.append(f"\n**{p.id}** ({p.title}; topology `{p.topology or 'retail'}`)\n")
        lines.append("| id | level | check | expect | cites | basis |")
        lines.append("|---|---|---|---|---|---|")
        for r in own:
            quorum = f" (sites: {r.quorum * 100:g}%)" if r.quorum is not None else ""
            cites = "; ".join(c.text for c in r.cites) or r.source
            lines.append(f"| {r.id} | {r.level} | {r.check} | `{_cell(r.expect.text)}`{quorum} | {_cell(cites)} "
                         f"| {_cell(r.basis.text)} |")
            count += 1
    return "\n".join(lines).strip() + "\n", len(profiles), count


def splice(text: str, which: str, body: str) -> str:
    begin, end = MARKS[which]
    if begin not in text or end not in text:
        raise SystemExit(f"{DOC}: markers for {which} missing ({begin} ... {end})")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}{end}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="store_true", help="run tests/profiles/test_mutation.py first")
    parser.add_argument("--table", type=Path, help="a mutation table written by the test (EDGE_MUTATION_TABLE)")
    args = parser.parse_args()
    started = time.monotonic()
    text = DOC.read_text(encoding="utf-8")
    body, n_profiles, n_reqs = traceability()
    text = splice(text, "trace", body)
    table_file = args.table
    if args.run:
        table_file = Path(tempfile.mkdtemp(prefix="mutation-")) / "table.md"
        env = {**os.environ, "EDGE_MUTATION_TABLE": str(table_file)}
        subprocess.run([sys.executable, "-m", "pytest", "tests/profiles/test_mutation.py", "-m", "mutation",
                        "-p", "no:locust", "-q"],
                       cwd=ROOT, env=env, check=False)
    status = "unchanged"
    if table_file is not None and table_file.exists():
        text = splice(text, "mutation", table_file.read_text(encoding="utf-8"))
        status = "updated"
    DOC.write_text(text, encoding="utf-8")
    print(json.dumps({"profiles": n_profiles, "requirements": n_reqs, "mutation_table": status,
                      "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
