"""The code's shape, checked: imports run one way, down the layers (function-level imports
included), the module graph has no cycle, and no source file outgrows a reader."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "tokenloop"

# Lowest first, by package (a top-level module counts as its own package). A module may import
# from its own layer or below, never above; packages of one layer must not import each other in a
# circle. A new module inside a package needs no entry here: its package places it.
LAYERS = [
    ("foundations: what a step is made of", ["errors", "records", "sampling", "scores"]),
    ("the model itself", ["model"]),
    ("where scores come from", ["backends"]),
    ("the tools every measurement shares", ["measure"]),
    ("the loop", ["loop"]),
    ("what things cost, what a user waits for, training, the draw", ["cost", "latency", "training", "draws"]),
    ("the views", ["charts", "terminal"]),
    ("the lessons as documents", ["lessons"]),
    ("the edges", ["web", "commands"]),
    ("the entry point", ["cli", "__main__"]),
]
TOP_LEVEL_MODULES_AT_MOST = 10


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    return module.split(".")[0] if module else ""


def layer_of(module: str) -> int:
    package = package_of(module)
    for number, (_, packages) in enumerate(LAYERS):
        if package in packages:
            return number
    raise AssertionError(f"tokenloop.{package} is in no layer: add it to LAYERS in {__file__}")


def imports(path: Path) -> set[str]:
    """Every tokenloop module this file imports, at any depth of the code."""
    here = module_name(path).split(".") if path.name != "__init__.py" else module_name(path).split(".") + ["x"]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [f"{prefix}.{a.name}" if prefix else a.name for a in node.names]
        else:
            continue
        for name in names:
            name = (
                name.removeprefix("tokenloop.")
                if name.startswith("tokenloop.")
                else (name if node.__class__ is ast.ImportFrom and node.level else None)
            )
            if not name:
                continue
            # `from . import kinds` names a module; `from .loop import generate` names a function in one
            while (
                name
                and not (SRC / (name.replace(".", "/") + ".py")).exists()
                and not (SRC / name.replace(".", "/") / "__init__.py").exists()
            ):
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in SRC.rglob("*.py") if module_name(p)}


def test_imports_run_down_the_layers():
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            if layer_of(target) > layer_of(module):
                wrong.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert not wrong, "\n".join(sorted(wrong))


def package_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        edges.setdefault(package_of(module), set()).update(package_of(t) for t in targets)
    return {package: targets - {package} for package, targets in edges.items()}


def find_cycle(edges: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}

    def visit(module, trail):
        if state.get(module) == 1:
            raise AssertionError("import cycle: " + " -> ".join(trail + [module]))
        if state.get(module) == 2:
            return
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            visit(target, trail + [module])
        state[module] = 2

    for module in sorted(edges):
        visit(module, [])


def test_the_module_graph_has_no_cycle():
    find_cycle(graph())


def test_the_packages_import_each_other_without_a_cycle():
    find_cycle(package_graph())


def test_the_top_level_holds_only_the_core():
    modules = sorted(p.stem for p in SRC.glob("*.py") if p.stem != "__init__")
    assert len(modules) < TOP_LEVEL_MODULES_AT_MOST, f"put these in packages by idea: {modules}"


def test_every_package_says_what_it_holds_and_may_import():
    for init in SRC.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 60, f"{init.relative_to(SRC)} needs a docstring: what the package holds"
    for package in {p.parent for p in SRC.rglob("*.py")} - {SRC}:
        if package.name != "static":
            assert (package / "__init__.py").exists(), f"{package.relative_to(SRC)} has no __init__.py"


def test_the_backends_package_itself_imports_no_torch():
    tree = ast.parse((SRC / "backends" / "__init__.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("torch" in ast.dump(n) for n in top)


def test_no_source_file_outgrows_a_reader():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"files over 400 lines: {long}"


def route_decorators(path: Path) -> list[str]:
    """`@x.get(...)`, `@x.post(...)`, ... and `add_api_route` calls in one file."""
    verbs = {"get", "post", "put", "patch", "delete", "api_route", "websocket", "add_api_route", "route"}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in verbs:
            if isinstance(node.func.value, ast.Name) and node.func.value.id in {"app", "router"}:
                found.append(f"{path.name}:{node.lineno} {node.func.value.id}.{node.func.attr}")
    return found


def test_every_route_lives_in_a_router_under_web_routes():
    web = SRC / "web"
    elsewhere = [hit for p in web.rglob("*.py") if p.parent.name != "routes" for hit in route_decorators(p)]
    assert not elsewhere, f"routes outside web/routes/ (app.py only builds the app): {elsewhere}"
    for module in (web / "routes").glob("*.py"):
        if module.name != "__init__.py":
            assert "APIRouter(" in module.read_text(), f"web/routes/{module.name} defines no APIRouter"


def test_one_module_maps_errors_to_http_status():
    """The error classes' HTTP codes are written down once: web/errors.py's STATUS."""
    holders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Name) and k.id.endswith("Error") for k in node.keys if k is not None
            ):
                if all(isinstance(v, ast.Constant) and isinstance(v.value, int) for v in node.values):
                    holders.append(str(path.relative_to(SRC)))
    assert holders == ["web/errors.py"], holders
