"""The package's import graph, built from the source with ``ast``: no cycle anywhere, and the layers import
downwards only (commands -> run -> tasks -> models/data -> cells).

Every import counts, at module level or inside a function: a cycle through a function-level import is
still a cycle, only deferred.
"""

import ast
import os

import pytest

import rnnlab

ROOT = os.path.dirname(os.path.abspath(rnnlab.__file__))


def _modules() -> dict[str, str]:
    """``{"rnnlab.tasks.charlm": path}`` for every module of the package (``__init__`` as the package)."""
    found = {}
    for folder, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, name), os.path.dirname(ROOT))[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = os.path.join(folder, name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports: ``from .x import y`` counts ``x.y`` when ``y`` is a module,
    else ``x`` (whose namespace must then be complete)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            targets |= {name for name in names if name in modules and name != module}
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first repeated at the end), or None: depth-first search."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_none_where_there_is_none():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "rnnlab.tasks" in graph["rnnlab.run"]                 # from .tasks import TASKS
    assert "rnnlab.writing" in graph["rnnlab.folder"]            # inside RunFolder.read_styles
    assert "rnnlab.data.order" in graph["rnnlab.tasks.classify"]  # from ..data.order import shuffled_batch
    assert "rnnlab.tasks.base" in graph["rnnlab.tasks.lm"]       # from .base import Task


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("low", ["rnnlab.tasks", "rnnlab.models", "rnnlab.data", "rnnlab.cells", "rnnlab.writing",
                                 "rnnlab.draw", "rnnlab.checkpoint", "rnnlab.folder", "rnnlab.loop"])
def test_lower_layers_never_import_the_api_or_the_command_line(low):
    above = {"rnnlab", "rnnlab.run", "rnnlab.commands", "rnnlab.cli"}
    for module, targets in import_graph().items():
        if module == low or module.startswith(low + "."):
            assert not targets & above, f"{module} imports {sorted(targets & above)}"


def test_weight_and_state_io_imports_no_task():
    graph = import_graph()
    for module in ("rnnlab.checkpoint", "rnnlab.folder", "rnnlab.files", "rnnlab.draw", "rnnlab.loop"):
        reached, todo = set(), [module]
        while todo:
            for target in graph[todo.pop()] - reached:
                reached.add(target)
                todo.append(target)
        assert not any(m.startswith("rnnlab.tasks") for m in reached), f"{module} reaches {sorted(reached)}"


def _loaded_after(code: str, tmp_path) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    import json
    import subprocess
    import sys

    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


TASK_MODULES = {"rnnlab.tasks.charlm", "rnnlab.tasks.wordlm", "rnnlab.tasks.classify", "rnnlab.tasks.handwriting",
                "rnnlab.tasks.synthesis"}


def test_start_up_loads_only_what_the_command_uses(tmp_path):
    """The parser knows the task names without importing a task; ``rnnlab write -o x.png`` loads the synthesis
    task alone and no matplotlib (a PNG of strokes is drawn with Pillow), so start-up is mostly torch's."""
    parsed = _loaded_after("from rnnlab.cli import parser\nparser().parse_args(['train', 'charlm', '--out', 'r'])",
                           tmp_path)
    assert not parsed & TASK_MODULES
    wrote = _loaded_after("from rnnlab.cli import main\nassert main(['write', 'Hi', '-o', 'x.png', '--seed', '1']) == 0",
                          tmp_path)
    assert (tmp_path / "x.png").stat().st_size > 0
    assert wrote & TASK_MODULES == {"rnnlab.tasks.synthesis"}
    assert not any(name.split(".")[0] == "matplotlib" for name in wrote)
