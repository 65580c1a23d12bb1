"""Shared test helpers live in ``tests/helpers.py``: no module of the suite imports a test module or a
``conftest.py`` by name (pytest loads those itself), and no module holds a copy of a helper."""
from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent

#: An import statement inside a string, as in the code a test runs with ``python -c``.
CODE_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import\s+([\w, ()]+)|import\s+([\w., ]+))", re.MULTILINE)


def is_forbidden(module: str) -> bool:
    """Whether a dotted module name names a test module or a conftest (``tests.pipeline.test_build``, ``conftest``)."""
    return any(part.startswith("test_") or part == "conftest" for part in module.split("."))


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) for every module an ``import`` statement of ``tree`` names, anywhere in the file, with
    relative imports resolved against ``package`` and ``from PACKAGE import NAME`` also counted as module
    ``PACKAGE.NAME``; import lines in string constants (code run in a subprocess) count too."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in CODE_IMPORT.finditer(node.value):
                if match[1]:
                    found.append((node.lineno, match[1]))
                    found += [(node.lineno, f"{match[1]}.{name}") for name in re.findall(r"\w+", match[2])]
                else:
                    found += [(node.lineno, name.strip()) for name in match[3].split(",")]
    return found


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).parent.parts)


def test_no_module_imports_a_test_module_or_a_conftest():
    offenders = [f"{path.relative_to(TESTS.parent)}:{line}: {module}"
                 for path in sorted(TESTS.rglob("*.py"))
                 for line, module in imported_modules(ast.parse(path.read_text(encoding="utf-8")), package_of(path))
                 if is_forbidden(module)]
    assert offenders == [], "import shared helpers from tests.helpers instead:\n" + "\n".join(offenders)


def test_the_check_sees_every_form_of_such_an_import():
    # Spelt with {T}, TEST_ and CONFTEST, so that this file itself holds no such import, not even in a string.
    code = ("from {T}.pipeline.TEST_build import read_csv\n"
            "import {T}.scripts.TEST_cli\n"
            "from {T}.scripts import TEST_cli\n"
            "from {T}.CONFTEST import toy_song\n"
            "from .TEST_train import RUN\n"
            "from . import CONFTEST\n"
            "def f():\n"
            "    from {T}.training.TEST_train import digest\n"
            "CODE = 'import sys\\nfrom {T}.pipeline.TEST_safety import LabelsFromNames\\n'\n"
            ).replace("{T}", "tests").replace("TEST_", "test_").replace("CONFTEST", "conftest")
    flagged = {line for line, module in imported_modules(ast.parse(code), "tests.training") if is_forbidden(module)}
    assert flagged == {1, 2, 3, 4, 5, 6, 8, 9}
    fine = "from tests.helpers import read_csv\nimport tests.helpers\nfrom tests import helpers\nimport pytest\n"
    assert not [module for _, module in imported_modules(ast.parse(fine), "tests") if is_forbidden(module)]


def top_level_definitions(tree: ast.Module) -> dict[str, str]:
    """Name -> ``ast.dump`` of every function, class and assignment at the top of a module."""
    definitions = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign):
            definitions.update((target.id, ast.dump(node.value)) for target in node.targets
                               if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            definitions[node.target.id] = ast.dump(node.value)
    return definitions


def test_no_module_holds_a_copy_of_a_helper():
    """A module may have its own helper of a helper's name (its own ``stop``, ``RUN``), not a copy of one."""
    helpers = top_level_definitions(ast.parse((TESTS / "helpers.py").read_text(encoding="utf-8")))
    copies = [f"{path.relative_to(TESTS.parent)}: {name}"
              for path in sorted(TESTS.rglob("*.py")) if path.name != "helpers.py"
              for name, definition in top_level_definitions(ast.parse(path.read_text(encoding="utf-8"))).items()
              if helpers.get(name) == definition]
    assert copies == [], "import these from tests.helpers instead:\n" + "\n".join(copies)
