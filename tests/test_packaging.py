"""The conda environment and pyproject.toml must ask for the same packages."""

from __future__ import annotations

import tomllib

import yaml

from .conftest import REPO


def test_environment_yml_pip_section_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    requirements = [r for r in pip_section if not r.startswith("-e")]
    assert sorted(requirements) == sorted(project["dependencies"])
    assert "torch==2.13.0" in requirements
