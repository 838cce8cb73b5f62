"""The layout's boundaries (tunelab's subpackages by stage, each importing only the stages before it; the trainables
only the pieces of tunelab meant for them) and the docs' layout page against the tree."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASE = ("tunelab.errors", "tunelab.files", "tunelab.cache", "tunelab.progress", "tunelab.tracking", "tunelab.figures",
        "tunelab.data")  # fmt: skip
# each stage's subpackage and what it may import from tunelab besides itself (the interface, tunelab/__init__.py,
# api.py, cli.py, doctor.py and __main__.py, may import anything)
MAY_IMPORT = {
    "tunelab.trainable": BASE,
    "tunelab.spec": (*BASE, "tunelab.trainable"),
    "tunelab.store": (*BASE, "tunelab.spec"),
    "tunelab.engine": (*BASE, "tunelab.trainable", "tunelab.spec", "tunelab.store"),
    "tunelab.report": (*BASE, "tunelab.trainable", "tunelab.spec", "tunelab.store"),
    **{base: BASE for base in BASE},
}
TRAINABLES_MAY_IMPORT = ("tunelab.errors", "tunelab.data", "tunelab.cache", "tunelab.figures")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    """The modules ``path`` imports (at the top or inside functions; not those only a type checker reads), with
    ``from package import module`` as the module."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(
        node.test) for child in node.body for n in ast.walk(child)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {f"{node.module}.{a.name}" if _is_module(node.module, a.name) else node.module for a in node.names}
    return found


def _is_module(package: str, name: str) -> bool:
    folder = ROOT.joinpath(*package.split("."))
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def _stage(module: str) -> str | None:
    return next((s for s in MAY_IMPORT if module == s or module.startswith(s + ".")), None)


def _within(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


TUNELAB = sorted((ROOT / "tunelab").rglob("*.py"))


@pytest.mark.parametrize("path", TUNELAB, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_stage_imports_only_the_stages_before_it(path):
    stage = _stage(module_name(path))
    if stage is None:
        return  # the interface
    allowed = (stage, *MAY_IMPORT[stage])
    outside = sorted(m for m in imports(path) if m.split(".")[0] == "tunelab" and m != "tunelab" and not _within(
        m, allowed))  # fmt: skip
    assert not outside, f"{stage} may import {', '.join(allowed)} of tunelab, not {', '.join(outside)}"
    assert "tunelab" not in imports(path), "import the errors from tunelab.errors (tunelab itself is the API)"


@pytest.mark.parametrize("path", sorted((ROOT / "trainables").glob("*.py")), ids=lambda p: p.name)
def test_the_models_import_only_the_data_cache_figures_and_errors_of_tunelab(path):
    outside = sorted(m for m in imports(path) if m.split(".")[0] == "tunelab" and not _within(m, TRAINABLES_MAY_IMPORT))
    assert not outside, f"trainables may import {', '.join(TRAINABLES_MAY_IMPORT)}, not {', '.join(outside)}"


@pytest.mark.parametrize("stage", ["tunelab.report", "tunelab.store", "tunelab.spec"])
def test_the_report_results_and_spec_reach_models_only_through_the_protocol(stage):
    for path in ROOT.joinpath(*stage.split(".")).glob("*.py"):
        assert not {m for m in imports(path) if m.split(".")[0] == "trainables"}, path


def test_each_subpackage_says_what_it_owns_and_may_import():
    for stage in [s for s in MAY_IMPORT if (ROOT / s.replace(".", "/") / "__init__.py").is_file()]:
        doc = ast.get_docstring(ast.parse((ROOT / stage.replace(".", "/") / "__init__.py").read_text())) or ""
        assert "May import" in doc, stage


def test_the_docs_layout_page_names_every_module():
    page = (ROOT / "docs" / "development.md").read_text()
    named = set(re.findall(r"`(tunelab/[\w/]+(?:\.py|/))`", page[page.index("## Layout") :]))
    modules = {str(p.relative_to(ROOT)) for p in TUNELAB if p.name not in ("__init__.py", "__main__.py")}
    modules = {"tunelab/data/" if m.startswith("tunelab/data/") else m for m in modules}
    assert not modules - named, "modules missing from docs/development.md's layout"
    assert not named - modules, "docs/development.md's layout names what is not in the tree"
