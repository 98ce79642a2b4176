"""Which suite test implements each requirement's check, found without running pytest.

A check is implemented by a test function marked `@pytest.mark.edge_check("name")` in a test module of
the suites (`test_*.py`, functions `test*`, as suites/pytest.ini collects them). The modules are read
with `ast`, never imported: coverage can be computed for any checkout or wheel, and for a user's own
test files (`custom.*` checks). A requirement whose check no scanned test implements is *not covered*:
a run would skip it ("no collected test implements check ..."), so it can never pass.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .profile import Profile, Requirement
from .sources import basis_shares

MARKER = "edge_check"


@dataclass(frozen=True)
class Implementation:
    check: str
    path: str  # as shown: suites/<suite>/test_x.py for shipped suites
    function: str  # test function, Class::method for methods
    line: int

    @property
    def node(self) -> str:
        return f"{self.path}::{self.function}"


@dataclass
class CoverageRow:
    profile: str  # the profile asked about
    requirement: Requirement
    implementations: list[Implementation] = field(default_factory=list)

    @property
    def covered(self) -> bool:
        return bool(self.implementations)

    @property
    def inherited_from(self) -> str | None:
        """The ancestor profile the requirement comes from unchanged, if any."""
        return self.requirement.profile if self.requirement.profile != self.profile else None


def _marker_checks(decorators: list[ast.expr]) -> list[str]:
    found = []
    for dec in decorators:
        if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.func.attr == MARKER
                and dec.args and isinstance(dec.args[0], ast.Constant) and isinstance(dec.args[0].value, str)):
            found.append(dec.args[0].value)
    return found


def _module_marks(tree: ast.Module) -> list[str]:
    """Checks named by a module-level `pytestmark = pytest.mark.edge_check(...)` (or a list of marks)."""
    checks: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in stmt.targets):
            values = stmt.value.elts if isinstance(stmt.value, (ast.List, ast.Tuple)) else [stmt.value]
            checks += _marker_checks(list(values))
    return checks


def scan_file(path: Path, display: str) -> list[Implementation]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise ConfigError(display, exc.lineno, None, f"cannot read suite module: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(display, None, None, f"cannot read suite module: {exc}") from None
    module_checks = _module_marks(tree)
    found: list[Implementation] = []

    def visit(body: list[ast.stmt], prefix: str, inherited: list[str]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                for check in inherited + _marker_checks(node.decorator_list):
                    found.append(Implementation(check, display, prefix + node.name, node.lineno))
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                visit(node.body, f"{prefix}{node.name}::", inherited + _marker_checks(node.decorator_list))

    visit(tree.body, "", module_checks)
    return found


def scan_suites(roots: list[Path], *, display_root: Path | None = None,
                display_prefix: str = "") -> dict[str, list[Implementation]]:
    """check -> the test functions implementing it, in every `test_*.py` under `roots` (files or dirs)."""
    impls: dict[str, list[Implementation]] = {}
    for root in roots:
        if not root.exists():
            raise ConfigError(str(root), None, None, "no such file or directory")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("test_*.py")
                                                       if "__pycache__" not in p.parts)
        for path in files:
            display = str(path)
            if display_root is not None:
                try:
                    display = display_prefix + str(path.relative_to(display_root))
                except ValueError:
                    pass
            for impl in scan_file(path, display):
                impls.setdefault(impl.check, []).append(impl)
    return impls


def shipped_implementations() -> dict[str, list[Implementation]]:
    """The shipped suites' implementations, shown as suites/<suite>/<module>."""
    from .paths import suites_dir

    root = suites_dir()
    return scan_suites([root], display_root=root, display_prefix="suites/")


def coverage(profiles: list[Profile], impls: dict[str, list[Implementation]]) -> list[CoverageRow]:
    return [CoverageRow(p.id, r, list(impls.get(r.check, []))) for p in profiles for r in p.requirements]


def render(rows: list[CoverageRow], profiles: list[Profile]) -> str:
    lines: list[str] = []
    by_profile: dict[str, list[CoverageRow]] = {}
    for row in rows:
        by_profile.setdefault(row.profile, []).append(row)
    for p in profiles:
        mine = by_profile.get(p.id, [])
        covered = sum(r.covered for r in mine)
        lines.append(f"{p.id} {p.version} ({p.path}): {covered} of {len(mine)} requirements covered")
        lines.append(f"  thresholds: {basis_shares([r.requirement.basis.kind for r in mine])}")
        width = max((len(r.requirement.id) for r in mine), default=10)
        cwidth = max((len(r.requirement.check) for r in mine), default=10)
        for row in mine:
            r = row.requirement
            where = (", ".join(i.node for i in row.implementations) if row.covered
                     else f"NOT COVERED: no suite test implements {r.check}")
            origin = f"  <- {row.inherited_from}" if row.inherited_from else ""
            lines.append(f"  {r.id:<{width}}  {r.level:<6}  {r.basis.kind:<8}  {r.check:<{cwidth}}  {where}{origin}")
        lines.append("")
    total = len(rows)
    missing = [r for r in rows if not r.covered]
    lines.append(f"{len(profiles)} profiles, {total} requirements: {total - len(missing)} covered, "
                 f"{len(missing)} not covered; thresholds: {basis_shares([r.requirement.basis.kind for r in rows])}")
    return "\n".join(lines) + "\n"
