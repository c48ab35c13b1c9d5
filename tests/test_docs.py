"""The README stays short and true; the documentation site builds strictly and names only real modules.

README.md is hand-written (at most 200 lines) and links into ``docs/``, the
mkdocs site (``mkdocs.yml``). These tests keep both honest: every relative
link in the README reaches a file, every ``krios.<dotted>`` name in the docs is
a module (or a name defined in one) under ``src/krios``, every subpackage of
the architecture test's layers has its row in the design page, and
``mkdocs build --strict`` passes.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

from test_architecture import LAYERS

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MAX_README_LINES = 200

#: ``krios.a.b`` not preceded by a path or word character: ``plugins/inventory/krios.py`` is a file, not a module.
DOTTED = re.compile(r"(?<![\w/.-])krios(?:\.[A-Za-z_]\w*)+")
#: What follows ``krios.`` when the text is not a Python name: the collection, labels, file names.
NOT_PYTHON = ("krios.testbed", "krios.io", "krios.dev")
FILE_SUFFIXES = {"py", "yml", "yaml", "json", "sqlite", "md", "txt", "csv", "conf"}
#: ``krios/x/y.py`` or ``src/krios/x/y.py`` as a path in prose.
SOURCE_PATH = re.compile(r"(?<![\w/.-])(?:src/)?krios/[\w/]+\.py")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: ``from krios.x import a, b`` in a code sample: ``krios.x.a`` and ``krios.x.b`` must exist.
FROM_IMPORT = re.compile(r"^\s*from (krios(?:\.\w+)*) import \(?([\w, ]+)", re.MULTILINE)


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


@functools.cache
def _module_file(dotted: str) -> Path | None:
    """The source file of module ``dotted`` (a package's ``__init__.py``), or None."""
    base = SRC.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _defined(path: Path) -> dict[str, ast.AST]:
    """Top-level names a module defines or imports, with their nodes."""
    names: dict[str, ast.AST] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
    return names


def _class_members(node: ast.ClassDef) -> set[str]:
    members: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            members.add(item.name)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members.add(item.target.id)
        elif isinstance(item, ast.Assign):
            members |= {t.id for t in item.targets if isinstance(t, ast.Name)}
    return members


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a krios module, or a name (or a class member) defined in one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        path = _module_file(".".join(parts[:split]))
        if path is None:
            continue
        rest = parts[split:]
        if not rest:
            return True
        node = _defined(path).get(rest[0])
        if node is None:
            return False
        if len(rest) == 1:
            return True
        return isinstance(node, ast.ClassDef) and len(rest) == 2 and rest[1] in _class_members(node)
    return False


def named_modules(text: str) -> set[str]:
    """The ``krios.<dotted>`` Python names in a text (not the collection, labels or file names)."""
    found = set()
    for match in DOTTED.finditer(text):
        name = match.group(0)
        if name.startswith(NOT_PYTHON) or name.rsplit(".", 1)[-1] in FILE_SUFFIXES:
            continue
        found.add(name)
    for module, names in FROM_IMPORT.findall(text):
        found |= {f"{module}.{n.split(' as ')[0].strip()}" for n in names.split(",") if n.strip()}
    return found


def test_readme_is_short_and_names_the_two_commands():
    readme = README.read_text()
    lines = readme.count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; at most {MAX_README_LINES} (the rest: docs/)"
    assert "make demo" in readme and "make test" in readme


def test_ci_calls_make_test():
    assert re.search(r"^\s*make test\b", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)


def test_every_relative_link_in_the_readme_reaches_a_file():
    targets = [t for t in LINK.findall(README.read_text()) if not re.match(r"[a-z]+:|#", t)]
    assert targets, "README.md links into docs/"
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_krios_name_in_the_docs_exists_in_src():
    wrong = []
    for path in doc_files():
        text = path.read_text()
        wrong += [f"{path.relative_to(ROOT)}: {name}" for name in sorted(named_modules(text)) if not resolves(name)]
        for source in sorted(set(SOURCE_PATH.findall(text))):
            if not (SRC / source.removeprefix("src/")).is_file():
                wrong.append(f"{path.relative_to(ROOT)}: {source}")
    assert not wrong, "docs name modules or files that are not in src/krios:\n" + "\n".join(wrong)


def test_the_name_check_tells_real_from_moved_modules():
    assert resolves("krios.orbits.rtt") and resolves("krios.orbits.rtt.LatencyModel")
    assert resolves("krios.orbits.zones.Zone.ring") and resolves("krios.kube.client")
    assert not resolves("krios.latency") and not resolves("krios.rawapi") and not resolves("krios.orbits.zones.Nope")
    assert named_modules("`krios.testbed.krios_netem`, `krios.io/bench`, files ending `krios.yml`") == set()
    assert named_modules("from krios import inventory\nfrom krios.orbits.tle import TLE, load_tles") == {
        "krios.inventory", "krios.orbits.tle", "krios.orbits.tle.TLE", "krios.orbits.tle.load_tles"}


def test_the_design_page_says_where_each_subpackage_lives():
    page = (DOCS / "design" / "architecture.md").read_text()
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\|\s*`krios\.(\w+)`\s*\|\s*(\d+)\s*\|", page, re.M)}
    subpackages = {name: layer for name, layer in LAYERS.items() if (SRC / "krios" / name / "__init__.py").exists()}
    assert rows == subpackages, "docs/design/architecture.md's table differs from tests/test_architecture.py's LAYERS"


def build_site(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` as ``make docs`` runs it (never ``--quiet``: it hides warnings from ``--strict``)."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True, text=True, cwd=config.parent, timeout=300,
    )


def test_the_site_builds_strictly(tmp_path):
    result = build_site(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_the_strict_build_fails_on_a_broken_link_or_anchor(tmp_path):
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    with (tmp_path / "docs" / "index.md").open("a") as page:
        page.write("\nSee [a](guide/orbits.md#no-such-section) and [b](guide/no-such-page.md).\n")
    result = build_site(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-section" in result.stderr and "no-such-page.md" in result.stderr
