"""The package's layers: components never import the config package; the config package imports them once, at its top.

gradexp.value_types (the types of config values) sits below both, so a builder can annotate its keys
without importing gradexp.config, and gradexp.config.loading can import every registry at module level
without a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gradexp

PACKAGE = Path(gradexp.__file__).parent
COMPONENTS = sorted([*(PACKAGE / "models").glob("*.py"), *(PACKAGE / "data").glob("*.py"),
                     *(PACKAGE / "clipping").glob("*.py"), PACKAGE / "optim.py", PACKAGE / "schedules.py",
                     PACKAGE / "losses.py", PACKAGE / "value_types.py"])
COMPONENT_PACKAGES = ["gradexp.models", "gradexp.data", "gradexp.clipping", "gradexp.optim", "gradexp.schedules",
                      "gradexp.losses", "gradexp.value_types"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, whether the import is a statement of the module's own body) for each import in `path`.

    `from gradexp import config` counts as importing gradexp.config; relative imports are resolved.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top_level = {id(node) for node in tree.body}
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.append((base, id(node) in top_level))
            found += [(f"{base}.{alias.name}", id(node) in top_level) for alias in node.names]
    return found


def is_config(module: str) -> bool:
    return module == "gradexp.config" or module.startswith("gradexp.config.")


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_components_do_not_import_the_config_package(path: Path) -> None:
    assert not [module for module, _ in imports(path) if is_config(module)]


def test_value_types_import_nothing_from_gradexp() -> None:
    assert not [module for module, _ in imports(PACKAGE / "value_types.py") if module.startswith("gradexp")]


@pytest.mark.parametrize("path", sorted((PACKAGE / "config").glob("*.py")), ids=lambda path: path.name)
def test_the_config_package_imports_gradexp_modules_only_at_its_top(path: Path) -> None:
    assert not [module for module, top in imports(path) if module.startswith("gradexp") and not top]


def test_no_shim_is_left_where_the_value_types_were() -> None:
    assert not (PACKAGE / "config" / "types.py").exists()


@pytest.mark.subprocess
def test_importing_every_component_loads_no_config_module() -> None:
    code = (f"import sys; import {', '.join(COMPONENT_PACKAGES)}; "
            "print(sorted(m for m in sys.modules if m == 'gradexp.config' or m.startswith('gradexp.config.')))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               cwd=PACKAGE.parent)
    assert completed.stdout.strip() == "[]"


# plotting reads run folders through gradexp.recording and draws; nothing it imports trains or compares runs.
ABOVE_PLOTTING = ("gradexp.compare", "gradexp.sweep", "gradexp.runner", "gradexp.clipping", "gradexp.cli")


@pytest.mark.parametrize("path", sorted((PACKAGE / "plotting").glob("*.py")), ids=lambda path: path.name)
def test_plotting_imports_nothing_above_it(path: Path) -> None:
    assert not [module for module, _ in imports(path) if module.startswith(ABOVE_PLOTTING)]


def test_the_matplotlib_backend_is_chosen_once() -> None:
    calls = [path.relative_to(PACKAGE).as_posix() for path in sorted(PACKAGE.rglob("*.py"))
             if "matplotlib.use(" in path.read_text(encoding="utf-8")]
    assert calls == ["plotting/__init__.py"]


@pytest.mark.subprocess
@pytest.mark.parametrize("module, heavy", [
    ("gradexp.drawing", []),  # started before torch by `gradexp run`: it imports the plotting stack in a worker
    ("gradexp.plotting.runs", ["matplotlib", "pandas"]),  # no torch: `gradexp plot` needs none
])
def test_modules_that_must_start_quickly_load_only_what_they_use(module: str, heavy: list[str]) -> None:
    code = f"import sys, {module}; print(sorted({{'matplotlib', 'pandas', 'torch'}} & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               cwd=PACKAGE.parent)
    assert completed.stdout.strip() == str(heavy)


# The package from its lowest layer to its highest: a module may import its own layer and those before it.
# gradexp.config.schema (the typed config) is a plain record below the components; gradexp.config.loading
# checks configs against the components' registries, above them.
LAYERS = [
    ["gradexp.errors", "gradexp.value_types", "gradexp.registry", "gradexp.threads", "gradexp.interrupts",
     "gradexp.config.schema", "gradexp.recording"],
    ["gradexp.data"],
    ["gradexp.models", "gradexp.losses", "gradexp.optim", "gradexp.evaluation", "gradexp.schedules"],
    ["gradexp.clipping"],
    ["gradexp.config"],
    ["gradexp.experiment", "gradexp.plotting", "gradexp.resume", "gradexp.drawing"],
    ["gradexp.gradcheck", "gradexp.runner"],
    ["gradexp.compare", "gradexp.reporting", "gradexp.export"],
    ["gradexp.sweep"],
    ["gradexp.cli", "gradexp"],
]


def layer_of(module: str) -> int:
    """The layer of the longest LAYERS entry `module` is or lies inside."""
    matches = [(len(name), index) for index, names in enumerate(LAYERS) for name in names
               if module == name or module.startswith(name + ".")]
    return max(matches)[1]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer_or_imports_gradexp_inside_a_function(path: Path) -> None:
    own = module_name(path)
    found = [(module, at_top) for module, at_top in imports(path)
             if module.startswith("gradexp.") and module != "gradexp.__version__"]
    upward = [module for module, _ in found if layer_of(module) > layer_of(own)]
    assert not upward, f"{own} (layer {layer_of(own)}) imports from above: {upward}"
    # A command may import the library it drives when it runs, so `gradexp --help` starts quickly; and
    # gradexp.drawing imports the plotting stack where figures are drawn (a worker that `gradexp run` starts
    # before torch is imported): that is its job.
    if not own.startswith(("gradexp.cli", "gradexp.drawing")):
        assert all(at_top for _, at_top in found), f"{own} imports gradexp modules inside a function"
