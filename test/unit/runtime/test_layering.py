"""The runtime under internal/ knows nothing of Ray: the controllers are wired in at the entry point."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_internal_imports_nothing_from_controllers() -> None:
    offenders = []
    for path in sorted((REPO / "internal").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(REPO)}:{node.lineno} imports {n}"
                for n in names
                if n.split(".")[0] in ("controllers", "pkg", "kuberay_operator")
            ]
    assert offenders == []
