"""House rules that a clean clone must keep: lint-clean, type-clean (mypy), pinned public exports, public seams."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nanobanana_ui
from nanobanana_ui.domain import errors

ROOT = Path(__file__).resolve().parents[1]


def test_public_exports_are_pinned():
    assert sorted(nanobanana_ui.__all__) == sorted([
        "GeneratedImage", "ImageOptions", "ImageRequest", "ImageResult", "Mode", "Settings", "Studio", "StudioError",
        "Usage", "load_settings",
    ])
    assert all(issubclass(getattr(errors, name), errors.StudioError) for name in errors.__all__ if name != "map_error")
    assert all(getattr(nanobanana_ui, name) is not None for name in nanobanana_ui.__all__)
    with pytest.raises(AttributeError, match="no attribute 'studio'"):
        nanobanana_ui.studio  # noqa: B018 (only the names exported are there)


def test_a_lower_layer_is_imported_without_the_service_layer():
    """A process that needs only the quota (the shared secret, the limiter) does not import the Studio: 0.23 s ->
    0.07 s per such process (`python -X importtime -c "import nanobanana_ui.quota.partitions"`)."""
    check = "import sys, nanobanana_ui.quota.partitions; print(sorted(m for m in sys.modules if '.service' in m))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]"


def test_distinct_exit_codes_per_kind_of_failure():
    codes = {cls: cls.exit_code for cls in (errors.StudioError, errors.InputError, errors.AuthError,
                                            errors.RateLimitError, errors.NoImageError, errors.ServiceError,
                                            errors.StorageError)}
    assert sorted(codes.values()) == [1, 2, 3, 4, 5, 6, 7]


def test_ruff_is_clean():
    beside_python = Path(sys.executable).parent / "ruff"  # requirements-dev.txt installs it into the venv
    ruff = str(beside_python) if beside_python.exists() else shutil.which("ruff")
    assert ruff, "ruff is missing: pip install -r requirements-dev.txt"
    done = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout


@pytest.mark.timeout(600)  # a first run (no .mypy_cache yet, as on a clean clone) takes a minute or two
def test_mypy_passes():
    """pyproject.toml's [tool.mypy]: strict outside nanobanana_ui/ui/, check_untyped_defs inside it."""
    beside_python = Path(sys.executable).parent / "mypy"  # requirements-dev.txt installs it into the venv
    mypy = str(beside_python) if beside_python.exists() else shutil.which("mypy")
    assert mypy, "mypy is missing: pip install -r requirements-dev.txt"
    done = subprocess.run([mypy], capture_output=True, text=True, cwd=ROOT, timeout=540)  # files: pyproject.toml
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout


@functools.cache  # parsed once per run: two tests read it
def _package_imports() -> tuple[tuple[str, str, str], ...]:
    """(importing file, imported module, name) for every `from .x import name` inside the package."""
    import ast

    found = []
    for path in sorted((ROOT / "nanobanana_ui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("nanobanana_ui")):
                found += [(path.relative_to(ROOT).as_posix(), node.module or "", alias.name) for alias in node.names]
    return tuple(found)


def test_modules_share_only_public_names_and_the_quota_clock_is_a_leaf():
    private = [f"{where}: {module}.{name}" for where, module, name in _package_imports()
               if name.startswith("_") and not name.startswith("__")]
    assert private == [], "a private name used by another module should be public (or stay in its module)"
    imports = _package_imports()
    assert "limits" not in {module for where, module, _ in imports if where == "nanobanana_ui/domain/errors.py"}
    assert not [module for where, module, _ in imports if where == "nanobanana_ui/domain/quota_clock.py"]
    assert not [module for where, module, _ in imports if where == "nanobanana_ui/emulator/types.py"]


# The layers, lowest first: a module may import its own layer and the layers below it, never one above, not even
# lazily inside a function or under TYPE_CHECKING. Layers on one line are side by side and never import each other.
LAYERS = [
    {"domain"},
    {"imaging", "quota", "backends", "emulator"},
    {"storage"},
    {"service"},
    {"cli", "ui"},
    {"__init__", "__main__", "webapp"},  # the entry points: the package's API, the command line, the web app
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache  # parsed once per run: two tests read it (neither changes it)
def _import_graph() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports (anywhere in its body)."""
    import ast

    files = {_module_name(path): path for path in (ROOT / "nanobanana_ui").rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else node.module or ""
                submodules = {f"{base}.{alias.name}" for alias in node.names} & files.keys()
                graph[name] |= submodules or ({base} & files.keys())
            elif isinstance(node, ast.Import):
                graph[name] |= {alias.name for alias in node.names} & files.keys()
        graph[name].discard(name)
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else "__init__"
    return next(rank for rank, rooms in enumerate(LAYERS) if room in rooms)


def test_the_package_has_no_import_cycles():
    from graphlib import CycleError, TopologicalSorter

    try:
        TopologicalSorter(_import_graph()).prepare()
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_imports_only_go_down_the_layers_and_the_root_holds_only_entry_points():
    graph = _import_graph()
    upward = [f"{a} -> {b}" for a, imported in graph.items() for b in imported
              if _layer(b) > _layer(a) or (_layer(b) == _layer(a) and a.split(".")[1:2] != b.split(".")[1:2])]
    assert upward == [], "a lower layer imports a higher one (or a neighbour): move the code or invert the call"
    root_modules = sorted(p.name for p in (ROOT / "nanobanana_ui").glob("*.py"))
    assert root_modules == ["__init__.py", "__main__.py", "webapp.py"]


def test_no_module_is_over_400_lines():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in (ROOT / "nanobanana_ui").rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > 400} == {}, "split it by job (issue 19)"
