"""The layering of docs/architecture.md holds: no import cycle between any two modules of tokenlog.

import-linter (``lint-imports``, contracts in pyproject.toml) checks the layers and the separation of the log
tools in CI; this test catches a cycle between modules anywhere, function-local and TYPE_CHECKING imports included.
"""

from __future__ import annotations

import grimp

ALLOWED = {("tokenlog.sinks", "tokenlog.delivery.buffered")}  # the lazy alias tokenlog.sinks.BufferedSink


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    modules = sorted(graph.modules)
    edges = {
        module: sorted(
            imported
            for imported in graph.find_modules_directly_imported_by(module)
            if imported.startswith("tokenlog") and (module, imported) not in ALLOWED
        )
        for module in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_two_modules_import_each_other_even_indirectly() -> None:
    assert _cycles(grimp.build_graph("tokenlog")) == []


def test_the_cycle_check_finds_a_cycle_where_there_is_one() -> None:
    graph = grimp.build_graph("tokenlog")
    graph.add_import(importer="tokenlog.record", imported="tokenlog.route")  # record is at the bottom: a cycle
    assert any("tokenlog.record" in group and "tokenlog.route" in group for group in _cycles(graph))
