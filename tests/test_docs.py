"""Every code block of README.md and docs/*.md runs as written, so the docs
cannot drift from the code.

A fenced block is run according to its language:

* ``python``: with the venv's python; under ``mpiexec -n 2`` when it uses MPI
  (mentions ``mpi4py``);
* ``sh``/``bash``/``console``/``shell``: with ``bash -e``, the venv's ``bin/``
  first on PATH (``vlcc``, ``mpiexec``, ``python`` as after ``source
  .venv/bin/activate``);
* ``json``: parsed.

Blocks of one file run in order in one scratch directory (what a block writes,
``runs/heat``, is there for the next), which sees the checkout's top-level
folders (``examples/``, ``slurm/``, ...) as the reader's checkout would.
Blocks without a language or marked ``text`` are diagrams and output samples,
not code. A block not meant to run says so visibly: its first line is a
comment ``# not run: WHY`` (``// not run: WHY``), or, where the language has no
comments (json), its info string has ``not-run``. Any other language fails the
test until it is runnable or marked.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from vlcc._mpi import without_launcher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
SHELL = {"sh", "bash", "console", "shell"}
TEXT = {"", "text", "txt", "plain"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^\s*(#|//)\s*not run:\s*\S")


@dataclass
class Block:
    path: str
    line: int         # of the opening fence, 1-based
    lang: str
    info: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def not_run(self) -> bool:
        first = self.body.lstrip("\n").split("\n", 1)[0]
        return any(w.startswith("not-run") for w in self.info.split()) or bool(_NOT_RUN.match(first))


def blocks(path: str) -> list[Block]:
    """The fenced blocks of a markdown file (CommonMark fences: ``` or ~~~, up
    to 3 spaces of indent; a closing fence is at least as long as the opening
    one; an unclosed block runs to the end of the file)."""
    out, cur, lines = [], None, []
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read().split("\n")
    for i, line in enumerate(text, 1):
        m = _FENCE.match(line)
        if cur is None:
            if m:
                info = m["info"].strip()
                cur = (i, m["fence"], info, len(m["indent"]))
                lines = []
        elif m and m["fence"][0] == cur[1][0] and len(m["fence"]) >= len(cur[1]) \
                and not m["info"].strip():
            out.append(Block(path, cur[0], (cur[2].split() or [""])[0].lower(), cur[2],
                             "\n".join(lines) + "\n"))
            cur = None
        else:
            lines.append(line[cur[3]:] if line[:cur[3]].strip() == "" else line)
    if cur is not None:
        out.append(Block(path, cur[0], (cur[2].split() or [""])[0].lower(), cur[2],
                         "\n".join(lines) + "\n"))
    return out


def test_extractor_handles_fences():
    import tempfile
    md = ("text\n```sh\necho a\n```\n\n~~~python\nprint('```')\n~~~\n"
          "````\n```json\n{}\n```\n````\n  ```json not-run: an excerpt\n  {\"a\": ...}\n  ```\n"
          "```text\nout\n```\n```python\n# not run: a sketch\nx = y\n```\n```sh\nunclosed\n")
    with tempfile.NamedTemporaryFile("w", suffix=".md", dir=ROOT, delete=False) as f:
        f.write(md)
    try:
        got = blocks(os.path.basename(f.name))
    finally:
        os.remove(f.name)
    assert [(b.lang, b.not_run) for b in got] == [
        ("sh", False), ("python", False), ("", False), ("json", True), ("text", False),
        ("python", True), ("sh", False)]
    assert got[1].body == "print('```')\n" and got[2].body == "```json\n{}\n```\n"
    assert got[3].body == '{"a": ...}\n' and got[3].line == 14


def _scratch(tmp_path) -> str:
    """A directory that looks like the checkout to the blocks (its top-level
    folders and files), where they may write (runs/, build outputs)."""
    for name in os.listdir(ROOT):
        if name.startswith(".") or name in ("runs", "build") or name.endswith(".egg-info"):
            continue
        os.symlink(os.path.join(ROOT, name), tmp_path / name)
    os.symlink(os.path.dirname(BIN), tmp_path / ".venv")      # `.venv/bin/vlcc ...` as written
    return str(tmp_path)


def _env() -> dict:
    env = without_launcher()
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["VIRTUAL_ENV"] = os.path.dirname(BIN)
    return env


def run_block(b: Block, cwd: str, n: int) -> None:
    if b.lang == "json":
        try:
            json.loads(b.body)
        except ValueError as exc:
            pytest.fail(f"{b.where}: json block does not parse ({exc}); mark an excerpt "
                        f"```json not-run")
        return
    script = os.path.join(cwd, f".block{n}")
    with open(script, "w") as f:
        f.write(b.body)
    if b.lang == "python":
        cmd = [sys.executable, script]
        if "mpi4py" in b.body:
            cmd = [os.path.join(BIN, "mpiexec"), "-n", "2", *cmd]
    elif b.lang in SHELL:
        cmd = ["bash", "-e", "-o", "pipefail", script]
    else:
        pytest.fail(f"{b.where}: a ```{b.lang} block: the docs test cannot run it; make it a "
                    f"python/sh/json block or mark it '# not run: WHY'")
    p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        pytest.fail(f"{b.where}: the ```{b.lang} block exited {p.returncode}\n--- block\n{b.body}"
                    f"--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}")


@pytest.mark.parametrize("path", DOCS)
def test_doc_blocks_run(path, tmp_path):
    todo = [b for b in blocks(path) if b.lang not in TEXT and not b.not_run]
    cwd = _scratch(tmp_path)
    for n, b in enumerate(todo):
        run_block(b, cwd, n)


def test_few_blocks_are_marked_not_run():
    """Marking is for what cannot run here (set-up that installs, a cluster, a
    sketch whose runnable version is an example): a handful, each with a reason."""
    marked = [b.where for p in DOCS for b in blocks(p) if b.not_run]
    assert len(marked) <= 10, marked
