"""The shape of the code, checked: the engine never imports the app (nor Qt), a plain import of
the engine and CLI pulls in no heavy framework, and the code is ruff-clean."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = ("netbuilder.gui", "PySide6", "pyqtgraph", "shiboken6")


def imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (lazy imports inside functions included), and
    the literal names it hands to importlib.import_module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def test_core_never_imports_the_gui_or_qt():
    files = sorted((ROOT / "core").rglob("*.py"))
    assert len(files) > 30
    bad = [f"{f.relative_to(ROOT)}:{line}: {name}" for f in files for line, name in imported_names(f)
           if name.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6") or name.startswith("netbuilder.gui")
           or name.split(".")[0] in ("gui", "core")]  # the pre-package names would import a copy
    assert bad == []


def test_the_checker_sees_a_lazy_import_inside_a_function(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import importlib\n    from netbuilder.gui import app\n"
                      "    importlib.import_module('PySide6.QtWidgets')\n")
    assert [name for _, name in imported_names(sample)] == ["importlib", "netbuilder.gui", "PySide6.QtWidgets"]


def test_the_engine_and_cli_import_without_qt_or_torch():
    code = ("import sys, netbuilder.core.cli, netbuilder.core.trainer, netbuilder.core.network, "
            "netbuilder.core.export, netbuilder.core.datasets, netbuilder.core.summary; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'PySide6', 'pyqtgraph') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    out = subprocess.run([ruff, "check", "--output-format", "concise", str(ROOT)], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def block_kind_comparisons(path: Path, kinds) -> list[str]:
    """Comparisons (==, !=, in) of anything with a block kind's name as a string literal."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for operand in [node.left, *node.comparators]:
            literals = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            names = [n.value for n in literals if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {name!r}" for name in names if name in kinds]
    return found


def test_nothing_outside_a_block_module_compares_block_kind_names():
    from netbuilder.core.blocks import KINDS

    # Dataset kinds and optimiser names are other vocabularies; none of them is a block kind's name.
    files = [f for folder in ("core", "gui") for f in sorted((ROOT / folder).rglob("*.py"))
             if "blocks" not in f.relative_to(ROOT).parts]
    assert len(files) > 60
    assert [hit for f in files for hit in block_kind_comparisons(f, set(KINDS))] == []


def test_the_kind_checker_sees_a_comparison(tmp_path):
    sample = ROOT / "tests" / "_kind_sample.py"
    try:
        sample.write_text('def f(info):\n    return info.kind == "conv" or info.kind in ("pool", "x")\n')
        assert len(block_kind_comparisons(sample, {"conv", "pool"})) == 2
    finally:
        sample.unlink()
