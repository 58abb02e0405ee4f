"""The package layout: no import cycles between mobilejax modules, and nothing imports the CLI (dispatch only)."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "mobilejax")


def module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def imports_of(path: str) -> set[str]:
    """Every mobilejax module imported anywhere in the file (also inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mobilejax")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mobilejax"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def graph() -> dict[str, set[str]]:
    files = [os.path.join(d, f) for d, _, fs in os.walk(PKG) for f in fs if f.endswith(".py")]
    modules = {module_name(f): f for f in files}
    return {m: {i for i in imports_of(f) if i in modules and i != m} for m, f in modules.items()}


def test_nothing_imports_the_cli():
    assert [m for m, deps in graph().items() if "mobilejax.cli" in deps] == []


def test_no_import_cycles():
    g = graph()
    # a package's __init__ re-exports its submodules: edges into a package stand for its submodules' own edges
    g = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in g.items()}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(g[m]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert cycles == []
