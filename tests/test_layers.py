"""The library's layers: no import circle, the memory guard on its own, and a workflow
parse that never imports torch (every ``snakemake`` call and cluster job start pays for
what the Snakefile imports)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LIB = SRC / "sam2flow"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The sam2flow modules ``path`` imports, at its top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sam2flow")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + [node.module or ""]).strip(".") if node.level else node.module
            if not target or not target.startswith("sam2flow"):
                continue
            for alias in node.names:  # ``from . import maskfile`` names a module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found - {name}


MODULES = {module_name(p): p for p in LIB.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in GRAPH.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_no_module_imports_itself_through_others():
    assert sorted(m for m in GRAPH if m in reachable(m)) == []


def test_a_split_module_has_no_circle_left():
    """The frames modules were one file in a circle with ``ranges``; each now stands on
    the ones below it."""
    for low, high in [
        ("sam2flow.decoding", "sam2flow.ranges"),
        ("sam2flow.frame_folders", "sam2flow.decoding"),
        ("sam2flow.decoding", "sam2flow.extract"),
        ("sam2flow.frame_folders", "sam2flow.restore"),
    ]:
        assert high not in reachable(low), f"{low} reaches {high}"


def test_the_memory_guard_stands_on_its_own():
    outside = {m for m in reachable("sam2flow.memory") if not m.startswith("sam2flow.memory")}
    assert outside <= {"sam2flow.errors", "sam2flow.atomic", "sam2flow.vocabulary"}, outside
    text = "\n".join(p.read_text() for p in (LIB / "memory").glob("*.py"))
    assert not re.search(r"^\s*(import|from) (sam2|snakemake)\b", text, re.M)


def test_the_plan_package_imports_nothing_above_it():
    for name in [m for m in MODULES if m.startswith("sam2flow.plan")]:
        leaves = {"sam2flow.errors", "sam2flow.vocabulary", "sam2flow.prompts", "sam2flow.plan"}
        above = reachable(name) - leaves
        assert all(m.startswith("sam2flow.plan") for m in above), (name, above)


BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "sam2", "torchvision"):
            raise ImportError(f"{name} imported while the workflow is parsed")
sys.meta_path.insert(0, Block())
"""


def test_what_the_workflow_imports_to_build_its_dag_does_not_import_torch():
    texts = [(ROOT / "Snakefile").read_text()]
    texts += [p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk")]
    modules = sorted(
        {m for t in texts for m in re.findall(r"^\s*from (sam2flow[\w.]*) import", t, re.M)}
    )
    assert "sam2flow.plan.carry" in modules and "sam2flow.models" in modules  # read them all
    code = BLOCK + "".join(f"import {m}\n" for m in modules)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-600:]


def test_the_block_itself_catches_a_torch_import():
    code = BLOCK + "import sam2flow.memory\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "torch imported while the workflow is parsed" in out.stderr
