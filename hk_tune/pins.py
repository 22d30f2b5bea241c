"""The package versions hk_tune is tested with, and whether this environment has them.

The pins live in pyproject.toml. In a source checkout that file is read; in an installed copy
the distribution's metadata holds the same list, as of its install. An extra (`ray[default]`)
counts as its own requirements: without `ray[default]` there is no State API and Ray Train
leaks the CPUs of stopped trials (docs/design.md 4), so a missing extra is a problem like a
wrong pin.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

DISTRIBUTION = "hk_tune"


def pinned() -> tuple[str, list[Requirement]]:
    """(where the list came from, the runtime requirements; test extras left out)."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    project = _project_table(pyproject)
    if project is not None:
        return str(pyproject), [Requirement(r) for r in project.get("dependencies", [])]
    try:
        raw = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return "nowhere (hk_tune is neither installed nor a source checkout)", []
    requirements = [Requirement(r) for r in raw]
    return f"the installed {DISTRIBUTION} metadata", [
        r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def _project_table(pyproject: Path) -> dict | None:
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata serves instead
        return None
    try:
        table = tomllib.loads(pyproject.read_text()).get("project", {})
    except (OSError, ValueError):
        return None
    return table if table.get("name") == DISTRIBUTION else None


def problems(requirements: list[Requirement]) -> list[str]:
    """One short phrase per requirement this environment does not meet."""
    found = []
    for requirement in requirements:
        found += _unmet(requirement, requirement.name)
        for extra in sorted(requirement.extras):
            for needed in _extra_requirements(requirement.name, extra):
                found += _unmet(needed, f"{requirement.name}[{extra}]")
    return found


def _unmet(requirement: Requirement, owner: str) -> list[str]:
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        via = "" if owner == requirement.name else f" (needed by {owner})"
        return [f"{requirement.name} is missing{via}"]
    if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
        return [f"{requirement.name} {version} is installed, {requirement.specifier} is pinned"]
    return []


def _extra_requirements(name: str, extra: str) -> list[Requirement]:
    try:
        raw = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return []  # the package itself is reported missing
    environment = {**default_environment(), "extra": extra}
    needed = []
    for text in raw:
        requirement = Requirement(text)
        if requirement.marker is not None and requirement.marker.evaluate(environment) and \
                not requirement.marker.evaluate({**environment, "extra": ""}):
            needed.append(requirement)
    return needed
