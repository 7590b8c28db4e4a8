"""No module under src/payments_api runs past 300 lines and no function or method past 60: a
module a reader can hold in one sitting, a function on one screen. Lengths come from `ast`
(a function from its `def` line to its last line, decorators left out; a module by its lines),
so nested functions (the sandbox's route handlers) count on their own and inside their parent.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "payments_api"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def lengths(source: str, module: str) -> dict[str, tuple[int, int]]:
    """Each of `module` and its functions (`module::Class.method`, nested ones dotted under
    their parent) with its length and its limit."""
    found = {module: (len(source.splitlines()), MAX_MODULE_LINES)}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    assert child.end_lineno is not None
                    found[f"{module}::{name}"] = (
                        child.end_lineno - child.lineno + 1,
                        MAX_FUNCTION_LINES,
                    )
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def over_the_limits() -> dict[str, str]:
    """Every module and function under src/payments_api over its limit, with what it measures."""
    over: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for name, (length, limit) in lengths(path.read_text(), module).items():
            if length > limit:
                over[name] = f"{name}: {length} lines (limit {limit})"
    return over


def test_no_module_or_function_is_over_its_limit() -> None:
    over = over_the_limits()
    assert not over, "split these:\n" + "\n".join(over.values())


def test_the_measure_counts_from_def_to_last_line_and_sees_methods_and_nested_functions() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(59))
    source = (
        f"def sixty():\n{body}\n\n"
        f"class Shop:\n    @staticmethod\n    def sixty_one():\n        y = 0\n"
        + body.replace("    x", "        x")
        + "\n\ndef outer():\n    def inner():\n        return 1\n    return inner\n"
    )

    found = lengths(source, "m.py")

    assert found["m.py::sixty"] == (60, MAX_FUNCTION_LINES)
    assert found["m.py::Shop.sixty_one"] == (61, MAX_FUNCTION_LINES)
    assert found["m.py::outer.inner"] == (2, MAX_FUNCTION_LINES)
    assert found["m.py"] == (len(source.splitlines()), MAX_MODULE_LINES)
