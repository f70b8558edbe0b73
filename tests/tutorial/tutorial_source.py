"""The tutorial in shared/seed/, read when the tests run: its code blocks, what each one is, and its imports ported.

Nothing of the tutorial is kept in this repository. The text has no code fences, so a block is found where a line
opens like Python code (an import, a decorator, ``class``, ``def``) and runs on, one top-level statement at a time,
while the text parses; :func:`code_blocks` returns them with their place in the text. :func:`kind_of` names a block
by what its code does (a reranking step, a streaming step...), never by its wording. :func:`port` rewrites only the
``llama_index`` imports (DESIGN.md section 2); everything else stays as the tutorial has it.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import symtable
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: CI clones the repository with ``shared/`` beside it; a checkout elsewhere (a worktree) names the folder here.
SEED_DIR_VARIABLE = "RAYFLOW_TUTORIAL_SEED"
TUTORIAL_FILE = "000_7f492d514b6c22b1.txt"

#: The tutorial's modules and where their names live in rayflow; nothing else in a program changes.
PORTED_MODULES = {
    "llama_index.core.workflow": "rayflow",
    "llama_index.core": "rayflow.rag",
    "llama_index.core.postprocessor": "rayflow.rag",
    "llama_index.llms.openai": "rayflow.rag",
    "llama_index.embeddings.openai": "rayflow.rag",
}

# How a block opens: only lines that cannot be prose (prose never starts with a keyword followed by a name).
_OPENING = re.compile(r"(?:import \w|from \w[\w.]* import |@\w|class \w|(?:async )?def \w)")
# A top-level statement longer than this many lines is not looked for (the tutorial's longest is about 50).
_MAX_STATEMENT_LINES = 120


def seed_dir() -> Path:
    """``$RAYFLOW_TUTORIAL_SEED``, else ``<repository root>/../shared/seed``."""
    configured = os.environ.get(SEED_DIR_VARIABLE)
    return Path(configured) if configured else ROOT.parent / "shared" / "seed"


def tutorial_path() -> Path:
    return seed_dir() / TUTORIAL_FILE


@dataclass(frozen=True)
class Block:
    """A code block of the tutorial: its text, as is, and the line it starts on (1-based)."""

    line: int
    source: str

    @cached_property
    def tree(self) -> ast.Module:
        return ast.parse(self.source)

    @property
    def end_line(self) -> int:
        return self.line + self.source.count("\n")

    def __str__(self) -> str:
        return f"the block at line {self.line} of the tutorial"


def _top_level_statement(lines: list[str], start: int) -> tuple[int, ast.Module] | None:
    """Where the top-level statement opening at ``lines[start]`` ends (exclusive), and its tree; None if no
    statement opens there. A statement may only end before a blank line, a line at column 0 that is not a
    closing bracket, or the end of the text."""
    last = min(len(lines), start + _MAX_STATEMENT_LINES)
    for end in range(start + 1, last + 1):
        if end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t)]}"):
            continue
        try:
            tree = ast.parse("\n".join(lines[start:end]))
        except SyntaxError:
            continue
        return end, tree
    return None


def _is_prose(tree: ast.Module) -> bool:
    """A line like ``Streaming`` parses as an expression; a lone name or constant is a heading, not code."""
    return bool(tree.body) and all(
        isinstance(s, ast.Expr) and isinstance(s.value, (ast.Name, ast.Constant)) for s in tree.body
    )


def code_blocks(text: str) -> list[Block]:
    """The code blocks of ``text``, in order: each one opens like code and takes every following top-level
    statement (blank lines and comments between them included) until the text stops parsing."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if not _OPENING.match(lines[i]):
            i += 1
            continue
        end = i
        while True:
            nxt = end
            while nxt < len(lines) and not lines[nxt].strip():
                nxt += 1
            found = _top_level_statement(lines, nxt) if nxt < len(lines) else None
            if found is None or _is_prose(found[1]):
                break
            end = found[0]
        if end == i:
            i += 1
            continue
        blocks.append(Block(line=i + 1, source="\n".join(lines[i:end]).rstrip() + "\n"))
        i = end
    return blocks


# -- what a block is -------------------------------------------------------------------------------------


def _calls(tree: ast.AST) -> Iterator[str]:
    """The names called anywhere in ``tree``: ``f`` for ``f(...)``, ``attr`` for ``x.attr(...)``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                yield func.id
            elif isinstance(func, ast.Attribute):
                yield func.attr


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def _steps(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(_decorator_name(d) == "step" for d in node.decorator_list):
                yield node


def _is_union(annotation: ast.expr | None) -> bool:
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return True
    return isinstance(annotation, ast.Subscript) and _decorator_name(annotation.value) == "Union"


def _imported_modules(tree: ast.Module) -> set[str]:
    modules = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names)
    return modules


def kind_of(block: Block) -> str:
    """What the block is, from its code alone:

    ``imports`` (nothing but imports), ``fastapi`` (a web endpoint), ``rag`` (a workflow that reranks),
    ``parallel`` (a step with several workers), ``streaming`` (a step that writes to the stream),
    ``error_fallback`` / ``state_pair`` (steps outside any class: one that catches an exception / a pair that
    shares state through the context), ``branching`` (a step that returns one of several event types),
    ``first_workflow`` (any other workflow program); ``other`` for anything else.
    """
    tree = block.tree
    calls = set(_calls(tree))
    steps = list(_steps(tree))
    if all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in tree.body):
        return "imports"
    if any(m.split(".")[0] == "fastapi" for m in _imported_modules(tree)):
        return "fastapi"
    if "SentenceTransformerRerank" in calls:
        return "rag"
    if any(
        isinstance(d, ast.Call) and any(k.arg == "num_workers" for k in d.keywords)
        for s in steps
        for d in s.decorator_list
    ):
        return "parallel"
    if "write_event_to_stream" in calls:
        return "streaming"
    loose_steps = [s for s in tree.body if s in steps]
    if loose_steps:
        if any(isinstance(n, ast.Try) for s in loose_steps for n in ast.walk(s)):
            return "error_fallback"
        return "state_pair" if {"set", "get"} <= calls else "other"
    if any(_is_union(s.returns) for s in steps):
        return "branching"
    if steps:
        return "first_workflow"
    return "other"


def blocks_by_kind(blocks: Iterable[Block]) -> dict[str, Block]:
    """Each block under its kind; two blocks of one kind are an error (the tests would not know which to run)."""
    found: dict[str, Block] = {}
    for block in blocks:
        kind = kind_of(block)
        assert kind not in found, f"{block} and {found[kind]} are both {kind!r}"
        found[kind] = block
    return found


@dataclass(frozen=True)
class Tutorial:
    """The tutorial's code blocks, in order, and each one by its kind."""

    path: Path
    blocks: tuple[Block, ...]

    @classmethod
    def read(cls, path: Path) -> Tutorial:
        return cls(path, tuple(code_blocks(path.read_text(encoding="utf-8"))))

    @cached_property
    def by_kind(self) -> dict[str, Block]:
        return blocks_by_kind(self.blocks)

    def __getitem__(self, kind: str) -> Block:
        return self.by_kind[kind]

    def before(self, kind: str) -> list[Block]:
        """The blocks a reader has run by the time they reach the block of ``kind``."""
        return list(self.blocks[: self.blocks.index(self[kind])])


# -- porting and reading a program ---------------------------------------------------------------------


def port(source: str) -> str:
    """``source`` with its ``from llama_index... import`` lines pointed at rayflow (nothing else changes).

    Only the module name between ``from`` and ``import`` is replaced, on the line where the statement starts;
    any other ``llama_index`` import is an error, so a tutorial that grows one fails here, not at run time.
    """
    lines = source.splitlines(keepends=True)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "llama_index" for a in node.names):
            raise AssertionError(f"line {node.lineno}: no rayflow port for `import {node.names[0].name}`")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "llama_index":
            target = PORTED_MODULES.get(node.module)
            if target is None:
                raise AssertionError(f"line {node.lineno}: no rayflow port for module {node.module!r}")
            i = node.lineno - 1
            ported, n = re.subn(rf"^(\s*from\s+){re.escape(node.module)}(\s+import\b)", rf"\g<1>{target}\2", lines[i])
            assert n == 1, f"line {node.lineno}: cannot rewrite {lines[i]!r}"
            lines[i] = ported
    return "".join(lines)


def undefined_names(source: str) -> set[str]:
    """Global names ``source`` reads (anywhere: module level, functions, classes, annotations) that it never
    binds and that are not builtins: the names it needs from somewhere else to run."""
    top = symtable.symtable(source, "<block>", "exec")
    bound = bound_names(source)
    read: set[str] = set()

    def visit(table: symtable.SymbolTable) -> None:
        for symbol in table.get_symbols():
            if symbol.is_referenced() and (table is top or symbol.is_global()):
                read.add(symbol.get_name())
        for child in table.get_children():
            visit(child)

    visit(top)
    return {name for name in read - bound if not hasattr(builtins, name)}


def bound_names(source: str) -> set[str]:
    """The module-level names ``source`` binds (imports, assignments, functions, classes)."""
    top = symtable.symtable(source, "<block>", "exec")
    return {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}


def reader_prelude(blocks: Iterable[Block], *, settings: bool = True) -> str:
    """What a reader who ran ``blocks`` in one Python session still has from them besides their classes: their
    imports and, with ``settings``, their module-level ``X.attr = ...`` lines (``Settings.llm = ...``), ported,
    in order."""
    kept = []
    for block in blocks:
        source = port(block.source)
        for node in ast.parse(source).body:
            setting = isinstance(node, ast.Assign) and all(isinstance(t, ast.Attribute) for t in node.targets)
            if isinstance(node, (ast.Import, ast.ImportFrom)) or (settings and setting):
                segment = ast.get_source_segment(source, node)
                assert segment is not None
                kept.append(segment)
    return "\n".join(kept) + "\n"


def call_keywords(block: Block, callee: str) -> list[dict[str, object]]:
    """The constant keyword arguments of each call to ``callee`` (``f(...)`` or ``x.f(...)``) in the block, in
    order; ``asyncio.run`` is not a workflow's ``run``."""
    found: list[tuple[int, int, dict[str, object]]] = []
    for node in ast.walk(block.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name != callee or (isinstance(func, ast.Attribute) and ast.unparse(func.value) == "asyncio"):
            continue
        constants = {k.arg: k.value.value for k in node.keywords if k.arg and isinstance(k.value, ast.Constant)}
        found.append((node.lineno, node.col_offset, constants))
    return [constants for _, _, constants in sorted(found, key=lambda f: f[:2])]


def string_constants(block: Block) -> set[str]:
    """Every string literal of the block, the constant parts of f-strings included."""
    return {n.value for n in ast.walk(block.tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
