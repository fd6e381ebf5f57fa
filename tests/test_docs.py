"""The documentation: the MkDocs site builds with --strict (no broken link, no missing page), and the README stays a
short front page whose commands are the ones CI runs and whose links point at files that exist."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements-dev.txt "
                "&& python -m pytest")
INNER_LOOP = 'python -m pytest -m "not browser and not slow"'


def mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the project at `project` into `site` (never into the repository's own site/)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def copy_of_the_site_sources(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", project / "docs")
    return project


def test_the_docs_site_builds_with_strict(tmp_path):
    done = mkdocs_build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    for page in ("index", "cli", "web-app", "api-and-mcp", "batch", "models", "deployment", "vertex", "privacy",
                 "emulator", "architecture", "benchmarks", "development"):
        path = tmp_path / "site" / ("index.html" if page == "index" else f"{page}/index.html")
        assert path.is_file(), f"docs/{page}.md was not built"


def test_a_broken_link_or_anchor_fails_the_build(tmp_path):
    project = copy_of_the_site_sources(tmp_path)
    with (project / "docs" / "cli.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [a page that is gone](no-such-page.md) and [a lost section](refine.md#no-such-anchor).\n")
    done = mkdocs_build(project, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr and "no-such-anchor" in done.stderr


def test_a_page_left_out_of_the_nav_fails_the_build(tmp_path):
    project = copy_of_the_site_sources(tmp_path)
    (project / "docs" / "forgotten.md").write_text("# Forgotten\n", encoding="utf-8")
    done = mkdocs_build(project, tmp_path / "site")
    assert done.returncode != 0 and "forgotten.md" in done.stderr


def test_the_architecture_page_carries_the_package_map_of_the_layers():
    docstring = ast.get_docstring(ast.parse((ROOT / "nanobanana_ui" / "__init__.py").read_text(encoding="utf-8")))
    assert docstring
    layers = " ".join(docstring.split("\n\n")[1].split())
    for folder in ("domain", "imaging", "quota", "backends", "emulator", "storage", "service", "cli", "ui"):
        assert f"`{folder}`" in layers
    page = " ".join((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").split())
    assert layers in page, "docs/architecture.md and nanobanana_ui/__init__.py should give the same map of the layers"


def test_the_readme_is_short_and_its_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert TEST_COMMAND in readme and INNER_LOOP in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines(), ".ci/run must run the README's test command verbatim"
    assert "Python 3.11 or newer" in readme and "Python 3.10" not in readme


def test_the_readmes_links_and_pictures_point_at_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert local, "the README should link to the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == []
    pictures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", readme)
    assert len(pictures) >= 3 and all(p.startswith("docs/screenshots/") for p in pictures)
