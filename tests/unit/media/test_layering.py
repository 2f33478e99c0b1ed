"""The data plane never imports the control plane: nothing under media/ imports gateway."""

from __future__ import annotations

import ast
from pathlib import Path

MEDIA = Path(__file__).resolve().parents[3] / "media"


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_media_imports_nothing_from_gateway() -> None:
    files = sorted(MEDIA.rglob("*.py"))
    assert len(files) > 20
    offenders = {
        str(path.relative_to(MEDIA.parent)): name
        for path in files
        for name in _imports(path)
        if name == "gateway" or name.startswith("gateway.")
    }
    assert offenders == {}
