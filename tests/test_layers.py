"""The code's shape, checked: imports run one way, down the layers (function-level imports
included), the module graph has no cycle, and no source file outgrows a reader."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "tokenloop"

# Lowest first. A module may import from its own layer or below, never above.
LAYERS = [
    ("foundations", ["errors", "records", "sampling", "model_files", "model_config", "weights", "scores", "backends"]),
    ("backends", ["backends.*"]),
    ("choosing a backend", ["agreement", "paths"]),
    (
        "the loop and its measurements",
        [
            "loop",
            "model_numbers",
            "scratch",
            "staircase",
            "streamed",
            "server_staircase",
            "latency",
            "latency_stats",
            "latency_definitions",
            "ttft_split",
            "load",
            "concurrency",
            "training",
            "training_cost",
            "charts",
            "view",
            "lesson_markdown",
            "lesson_markdown_live",
            "provenance",
            "answer_time",
            "context_cost",
            "kv_causal",
            "kv_capacity",
            "kv_fill",
        ],
    ),
    ("the edges", ["web", "web.*", "commands", "commands.*"]),
    ("the entry point", ["cli", "__main__"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best = None
    for number, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            exact = pattern == module
            prefix = pattern.endswith(".*") and module.startswith(pattern[:-1])
            if exact or prefix:
                best = number if best is None or exact else best
    assert best is not None, f"tokenloop.{module} is in no layer: add it to LAYERS in {__file__}"
    return best


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
    return {module_name(p): imports(p) - {module_name(p)} for p in SRC.rglob("*.py")}


def test_imports_run_down_the_layers():
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            if layer_of(target) > layer_of(module):
                wrong.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert not wrong, "\n".join(sorted(wrong))


def test_the_module_graph_has_no_cycle():
    edges = graph()
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


def test_the_backends_package_itself_imports_no_torch():
    tree = ast.parse((SRC / "backends" / "__init__.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("torch" in ast.dump(n) for n in top)


def test_no_source_file_outgrows_a_reader():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"files over 400 lines: {long}"
