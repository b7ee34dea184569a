"""The code blocks of the documentation: find them in the Markdown, and run a page's blocks as a reader would.

A page's blocks run in order, in one fresh Python process, in an empty directory, as if pasted into one script
(or, for a notebook page, into the cells of one notebook):

- ```` ```python ```` runs; its standard output is kept. A ```` ```text title="Output" ```` block right after it
  is what it must print (compared like a doctest, with ``...`` matching anything);
- ```` ```console ```` runs each ``$ command`` line in bash and compares what it prints (standard output and
  error, as a terminal shows them) with the lines under it;
- any block titled with a file name (```` ```python title="worker.py" ````) is written to that file instead
  of being run, for a later command to use;
- other languages (``bash``, ``text``, ``toml``, ...) are shown, not run.

An HTML comment on the line above a fence changes that: ``<!-- norun: why -->`` leaves a block out (the tests
keep the list of such blocks short, with the reason), and ``<!-- only: mistralai>=2 -->`` runs it only with
that major version of a package installed.

Run as a script, this module is the runner: ``python docs_snippets.py STEPS.json RESULTS.json``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import doctest
import io
import json
import re
import subprocess
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs"

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)\s*(?P<attrs>.*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<text>.*?)\s*-->\s*$")
TITLE = re.compile(r'title="(?P<title>[^"]*)"')
FILE_TITLE = re.compile(r"^[\w./-]+\.\w+$")
ONLY = re.compile(r"^only:\s*(?P<package>[\w-]+)\s*(?P<op>>=|<)\s*(?P<major>\d+)$")
CHECK_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    """The page, relative to docs/ (``how-to/openai.md``)."""
    line: int
    """The line of the block's first line of code in the Markdown file (1-based)."""
    lang: str
    title: str | None
    marker: str | None
    """The text of the HTML comment on the line above the fence, if any."""
    code: str

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """The file this block is written to, when its title is a file name."""
        return self.title if self.title and FILE_TITLE.match(self.title) else None

    @property
    def is_output(self) -> bool:
        return self.lang == "text" and self.title == "Output"

    @property
    def norun_reason(self) -> str | None:
        if self.marker and self.marker.startswith("norun:"):
            return self.marker.removeprefix("norun:").strip()
        return None


def blocks(page: str) -> list[Block]:
    """Every fenced block of ``docs/<page>``, in order (fences inside lists and admonitions too)."""
    found = []
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = MARKER.match(previous)
        title = TITLE.search(match["attrs"])
        body: list[str] = []
        index += 1
        while index < len(lines) and not (
            lines[index].strip().startswith(fence) and not lines[index].strip().strip(fence[0])
        ):
            body.append(lines[index][indent:] if lines[index][:indent].strip() == "" else lines[index])
            index += 1
        first = index - len(body) + 1
        found.append(
            Block(
                page=page,
                line=first,
                lang=match["lang"].lower(),
                title=title["title"] if title else None,
                marker=marker["text"] if marker else None,
                code="\n".join(body) + "\n",
            )
        )
        index += 1
    return found


def installed_major(package: str) -> int | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version(package).split(".")[0])
    except PackageNotFoundError:
        return None


def applies(block: Block) -> bool:
    """Whether an ``only:`` condition on the block holds here (True without one)."""
    match = ONLY.match(block.marker or "")
    if not match:
        return True
    major = installed_major(match["package"])
    if major is None:
        return False
    wanted = int(match["major"])
    return major >= wanted if match["op"] == ">=" else major < wanted


def console_commands(block: Block) -> list[tuple[str, str]]:
    """``(command, expected output)`` for each ``$ `` line of a console block (a trailing ``\\`` continues it)."""
    commands: list[tuple[str, list[str]]] = []
    continued = False
    for line in block.code.splitlines():
        if continued:
            commands[-1] = (commands[-1][0] + "\n" + line, commands[-1][1])
            continued = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append((line[2:], []))
            continued = line.endswith("\\")
        elif commands:
            commands[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"{block.where}: console block text before the first '$ ' command: {line!r}")
    return [(command, "\n".join(out).strip("\n") + "\n" if any(out) else "") for command, out in commands]


@dataclass(frozen=True)
class Step:
    """What the runner does, and what it must print."""

    kind: str  # "python", "file" or "shell"
    block: Block
    text: str  # the code, the file's content, or the command
    expected: str | None  # the output it must print; None: not checked

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "line": self.block.line,
            "file": self.block.file_name,
            "path": str(DOCS / self.block.page),
        }


def steps(page: str) -> tuple[list[Step], list[Block]]:
    """The steps that running ``page`` takes, and the blocks left out (``norun`` or an ``only:`` that fails)."""
    result: list[Step] = []
    skipped: list[Block] = []
    page_blocks = blocks(page)
    for position, block in enumerate(page_blocks):
        following = page_blocks[position + 1] if position + 1 < len(page_blocks) else None
        expected = following.code if following is not None and following.is_output else None
        if block.norun_reason is not None or not applies(block):
            skipped.append(block)
        elif block.file_name:
            result.append(Step("file", block, block.code, None))
        elif block.lang == "python":
            result.append(Step("python", block, block.code, expected))
        elif block.lang == "console":
            result += [Step("shell", block, command, out) for command, out in console_commands(block)]
    return result, skipped


def output_matches(expected: str, got: str) -> bool:
    return doctest.OutputChecker().check_output(expected, got, CHECK_FLAGS)


# -- the runner: a fresh process per page ------------------------------------------------------------------------


def _run_python(
    step: dict[str, Any], namespace: dict[str, Any], notebook: bool, loop: asyncio.AbstractEventLoop
) -> str:
    source = "\n" * (step["line"] - 1) + step["text"]
    out = io.StringIO()
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if notebook else 0
    with contextlib.redirect_stdout(out):
        tree = ast.parse(source, step["path"], "exec", type_comments=False)
        last = tree.body[-1] if notebook and tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:  # a notebook shows the value of a cell's last expression
            tree.body.pop()
        _execute(compile(tree, step["path"], "exec", flags=flags), namespace, loop)
        if last is not None:
            value = _execute(compile(ast.Expression(last.value), step["path"], "eval", flags=flags), namespace, loop)
            if value is not None:
                print(repr(value))
    return out.getvalue()


def _execute(code: types.CodeType, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Any:
    result = eval(code, namespace)
    if code.co_flags & 0x80:  # CO_COROUTINE: top-level await, as a notebook runs it
        result = loop.run_until_complete(result)
    return result


def _run_shell(step: dict[str, Any]) -> tuple[str, int]:
    done = subprocess.run(
        step["text"], shell=True, executable="/bin/bash", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return done.stdout, done.returncode


def run_steps(step_list: list[dict[str, Any]], notebook: bool) -> list[dict[str, Any]]:
    """Run the steps in this process (the current directory is the reader's); one result per step run."""
    main = types.ModuleType("__main__")  # functions defined in the blocks pickle as __main__.NAME (fork start)
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    loop = asyncio.new_event_loop()
    results = []
    for step in step_list:
        result: dict[str, Any] = {"output": "", "error": None, "status": 0}
        try:
            if step["kind"] == "file":
                Path(step["file"]).parent.mkdir(parents=True, exist_ok=True)
                Path(step["file"]).write_text(step["text"], encoding="utf-8")
            elif step["kind"] == "python":
                result["output"] = _run_python(step, main.__dict__, notebook, loop)
            else:
                result["output"], result["status"] = _run_shell(step)
        except BaseException:
            result["error"] = traceback.format_exc()
        results.append(result)
        if result["error"]:
            break
    return results


def main() -> None:
    steps_file, results_file = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(steps_file).read_text(encoding="utf-8"))
    results = run_steps(spec["steps"], spec["notebook"])
    sys.stdout.flush()
    Path(results_file).write_text(json.dumps(results), encoding="utf-8")


if __name__ == "__main__":
    main()
