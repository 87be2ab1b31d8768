"""The project's own files: dependencies in step, Makefile wiring, CI script."""

from __future__ import annotations

import re
import subprocess
import tomllib

import yaml
from conftest import ROOT


def _requirement_map(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", req.strip())
        assert match, req
        out[match.group(1).lower()] = match.group(2).replace(" ", "")
    return out


def test_environment_yml_and_pyproject_name_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = _requirement_map(project["dependencies"] + extras["dev"] + extras["notebook"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = _requirement_map([r for r in pip_block if not r.startswith("-e")])
    assert conda == declared


def test_every_range_admits_the_pinned_torch_and_names_a_major_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = _requirement_map(project["dependencies"])
    assert deps["torch"] == ">=2.4,<3"  # satisfied by the CPU build 2.13.0 the Makefile installs
    for name, spec in deps.items():
        assert "<" in spec, f"{name} has no upper bound"
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH_VERSION := 2.13.0" in makefile


def test_every_target_depends_on_the_install_step():
    out = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    for target in (
        "train",
        "test",
        "evaluate",
        "predict",
        "interactive",
        "ui",
        "bench",
        "data",
        "lint",
    ):
        line = next(line for line in out.splitlines() if line.startswith(f"{target}:"))
        assert ".venv/.installed" in line, line


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (ROOT / "README.md").read_text()
    assert "make train" in readme and "make test" in readme
