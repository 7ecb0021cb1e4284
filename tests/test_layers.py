"""Layers point down (DESIGN.md, "Layout"): no module imports from a layer above its own, also not
inside a function. The shared utilities at the package root (viz, quiet) import no layer at all."""
import ast
from pathlib import Path

import pytest

ORDER = ["audio", "data", "nn", "diffusion", "models", "clap", "metrics", "controls", "ito", "lit", "runs",
         "bench", "serve", "demo", "cli"]
UTILITIES = {"viz", "quiet"}
ROOT = Path(__file__).resolve().parents[1] / "src" / "ditto2"


def ditto2_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "ditto2" and len(parts) > 1:
                yield node.lineno, parts[1]


def upward_imports(root: Path) -> list[str]:
    bad = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).parts
        me = rel[0].removesuffix(".py")
        for line, layer in ditto2_imports(f):
            if me in UTILITIES and layer in ORDER:
                bad.append(f"{'/'.join(rel)}:{line} (a utility) imports the {layer} layer")
            elif me in ORDER and layer in ORDER and ORDER.index(layer) > ORDER.index(me):
                bad.append(f"{'/'.join(rel)}:{line} imports ditto2.{layer}, a layer above {me}")
    return bad


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(ROOT) == []


def test_every_package_folder_is_a_known_layer():
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(ORDER), folders - set(ORDER)


def test_the_check_can_fail(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "x.py").write_text("def f():\n    from ditto2.lit.ito import ITOModule\n")
    (tmp_path / "viz.py").write_text("import ditto2.controls.base\n")
    assert len(upward_imports(tmp_path)) == 2


@pytest.mark.parametrize("layer", ORDER)
def test_the_order_names_real_modules(layer):
    assert (ROOT / layer).is_dir() or (ROOT / f"{layer}.py").is_file()
