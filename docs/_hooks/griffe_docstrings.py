"""A griffe extension (loaded by mkdocstrings, see mkdocs.yml): tokenlog's docstrings, readable as Markdown.

tokenlog's docstrings are written for ``help()`` and doctest: Sphinx roles (``:func:`usage_session```) and
``>>>`` examples. Markdown would show the roles as literal text and the examples as nested block quotes, so
before mkdocstrings renders a docstring this extension

- turns each role into a cross-reference to the object it names, resolved in the docstring's scope; it is
  marked optional, so a target that has no entry in the API reference is shown as code, never as a warning;
- puts each run of doctest lines (from a ``>>>`` line to the next blank line) in a ``pycon`` code block, without
  the ``# doctest:`` directives.

The docstrings themselves (and so ``help()`` and the doctests) stay as they are.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:func|class|meth|data|attr|mod|exc|obj|const):`(?P<tilde>~?)(?P<target>[\w.]+)(?:\(\))?`"
)
DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` as seen from ``obj``'s docstring, or None."""
    if target.startswith("tokenlog"):
        return target
    head, _, rest = target.partition(".")
    scope: griffe.Object | None = obj if isinstance(obj, griffe.Class) else obj.parent
    while scope is not None:
        try:
            base = scope.resolve(head)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        return f"{base}.{rest}" if rest else base
    return None


def _role(obj: griffe.Object, match: re.Match[str]) -> str:
    target = match["target"]
    shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
    path = _resolve(obj, target)
    if path is None:
        return f"`{shown}`"
    return f'<autoref identifier="{html.escape(path)}" optional><code>{html.escape(shown)}</code></autoref>'


def _fence_doctests(text: str) -> str:
    out: list[str] = []
    in_example = False
    for line in text.splitlines():
        if not in_example and line.startswith(">>>"):
            out.append("```pycon")
            in_example = True
        elif in_example and not line.strip():
            out.append("```")
            in_example = False
        out.append(DIRECTIVE.sub("", line) if in_example else line)
    if in_example:
        out.append("```")
    return "\n".join(out)


def markdown_docstring(obj: griffe.Object, text: str) -> str:
    """``text`` (a docstring of ``obj``) with its roles linked and its examples fenced."""
    parts = re.split(r"(```.*?```|``[^`]+``)", _fence_doctests(text), flags=re.DOTALL)
    # Roles only outside code: a role written inside ``...`` or an example is left as it is.
    return "".join(part if index % 2 else ROLE.sub(lambda m: _role(obj, m), part) for index, part in enumerate(parts))


class MarkdownDocstrings(griffe.Extension):
    """Rewrite every docstring of the loaded package once the whole package is known."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._visit(pkg, set())

    def _visit(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._visit(member, seen)  # type: ignore[arg-type]
