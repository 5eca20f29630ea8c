"""The import contracts of pyproject.toml ([tool.importlinter]) are live, and cover every module.

``lint-imports`` runs in scripts/test; these tests show that breaking each rule fails it (on a
copy of the source with one forbidden import added), and that no top-level module of chatgate
escapes the layers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "chatgate"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
#: Modules every layer may use: values, errors, settings, the id and time helpers.
SHARED_KERNEL = {
    "__init__",
    "__main__",
    "domain",
    "errors",
    "ids",
    "moments",
    "settings",
    "streaming",
}


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _lint(source_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=source_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_top_level_module_is_in_a_layer_or_the_shared_kernel() -> None:
    layers = next(c for c in _contracts() if c["id"] == "layers")["layers"]
    assert isinstance(layers, list)
    placed = {
        name.strip().strip("()").removeprefix("chatgate.")
        for layer in layers
        for name in str(layer).replace(":", "|").split("|")
    }
    modules = {p.stem if p.is_file() else p.name for p in SOURCE.iterdir()}
    modules = {m for m in modules if not m.startswith(("_", ".")) or m in ("__init__", "__main__")}
    modules -= {"__pycache__", "py"}
    unplaced = sorted(m for m in modules if m not in placed and m not in SHARED_KERNEL)
    assert unplaced == [], f"place these in [tool.importlinter] layers: {unplaced}"


@pytest.mark.parametrize(
    ("module", "forbidden_import", "broken"),
    [
        ("api/deps.py", "from chatgate.store import sql", "store-behind-services"),
        ("services/auth.py", "from chatgate.api import errors", "layers"),
        ("providers/base.py", "from chatgate.services import recorder", "wires-stand-alone"),
    ],
)
def test_breaking_a_rule_fails_the_contract_run(
    tmp_path: Path, module: str, forbidden_import: str, broken: str
) -> None:
    copy = tmp_path / "src"
    shutil.copytree(SOURCE, copy / "chatgate", ignore=shutil.ignore_patterns("__pycache__"))
    kept = _lint(copy)
    assert kept.returncode == 0, kept.stdout[-3000:]
    target = copy / "chatgate" / module
    target.write_text(target.read_text() + f"\n{forbidden_import}  # noqa\n")
    result = _lint(copy)
    assert result.returncode != 0
    name = next(c for c in _contracts() if c["id"] == broken)["name"]
    assert f"{name} BROKEN" in " ".join(result.stdout.split()), result.stdout[-3000:]
