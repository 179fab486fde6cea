"""The shape docs/architecture.md describes: dependencies point one way, no module imports its way round
in a cycle, services never import tasks, and no module grows past the size one reader can hold."""

from __future__ import annotations

from pathlib import Path

from importlinter import cli

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "registry", "scoring", "monitoring", "demo")
MAX_MODULE_LINES = 600


def test_it_keeps_the_import_contracts(capsys) -> None:
    # The contracts live in pyproject.toml, where `make lint` reads them too.
    exit_code = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert exit_code == 0, capsys.readouterr().out


def test_no_module_outgrows_one_reading() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    }
    assert sizes, "no modules found"
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
