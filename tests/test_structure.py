"""The house rules of docs/design.md ("Architecture"), checked on the source so they stay true:
no import circle, no module over 400 lines, each heavy library in its own rooms, and the light
entry points import none of them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hk_tune"
MAX_LINES = 400
# Library -> the folders (or files) of hk_tune that may import it.
ROOMS = {
    "ray": ("train/", "search/"),
    "optuna": ("search/",),
    "optuna_dashboard": ("search/dashboard.py",),
    "mlflow": ("tracking/",),
    "transformers": ("train/", "dropout/attachment.py", "search/", "integrations/"),
    "trl": ("integrations/",),
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path) -> list[tuple[str, int]]:
    """Every module `path` imports (absolute imports), with its line; TYPE_CHECKING ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
            found.append((node.module, node.lineno))
    return found


def own_edges() -> dict[str, set[str]]:
    names = modules()

    def resolve(name: str) -> str | None:
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {}
    for name, path in names.items():
        for target, _ in imports(path):
            if target.startswith("hk_tune"):
                found = resolve(target)
                if found and found != name and not name.startswith(f"{found}."):
                    edges.setdefault(name, set()).add(found)
    return edges


def test_no_module_imports_itself_back():
    edges = own_edges()
    circles = []

    def visit(node: str, path: list[str]) -> None:
        for target in edges.get(node, ()):
            if target in path:
                circles.append(path[path.index(target):] + [target])
            elif len(path) < 12:
                visit(target, path + [target])

    for start in edges:
        visit(start, [start])
    assert not circles, f"import circles: {sorted({' -> '.join(c) for c in circles})}"


def test_no_module_is_over_the_size_limit():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("library", sorted(ROOMS))
def test_each_library_stays_in_its_rooms(library):
    outside = []
    for path in modules().values():
        relative = path.relative_to(PACKAGE).as_posix()
        for target, line in imports(path):
            if target.split(".")[0] == library and not relative.startswith(ROOMS[library]):
                outside.append(f"{relative}:{line}")
    assert not outside, f"{library} imported outside {ROOMS[library]}: {outside}"


def test_no_grab_bag_modules():
    assert not [p for p in PACKAGE.rglob("*.py") if p.stem in ("utils", "helpers", "misc")]


LIGHT = """
import sys
import hk_tune.cli, hk_tune.config.space_file, hk_tune.dropout.spec, hk_tune.search
heavy = [m for m in ("torch", "ray", "mlflow", "optuna", "transformers", "datasets")
         if m in sys.modules]
print(",".join(heavy))
"""


def test_the_command_line_and_the_config_layer_import_no_heavy_library():
    """`hk-tune best`, `show` and the checks before Ray start in a fraction of a second: what
    they import pulls in neither torch, Ray, MLflow nor Optuna."""
    done = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == ""
