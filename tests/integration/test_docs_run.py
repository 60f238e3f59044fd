"""Every code block in the repository's Markdown runs as written, or says why it cannot.

The convention (GitHub renders all of it as ordinary highlighted code):

* Code is fenced, and the info string starts with its language. ```python, ```js and ```sh blocks are
  programs and run; any other language (```text, ```yaml, ```proto, ...) is not a program. An indented
  code block or a fence without a language fails this test, so no block is left unclassified.
* ```LANG no-run: REASON marks a program that cannot run in a test (it needs Docker, a cluster, protoc,
  or it installs packages). The reason is required.
* ```python excerpt=PATH marks lines quoted from a file of the repository: they must appear in that file
  verbatim. An excerpt that is a whole program runs too; one that is not says so:
  ```python excerpt=PATH no-run: REASON.
* Each block is a whole program: blocks do not share state, so any one can be copied and run alone.
* A line that prints (`print(...)` in python, `console.log(...)` in js) and ends in a comment states
  what it prints: a block's comments on such lines, in order, must equal its output, whitespace collapsed.
* ```text output right after a program is that program's exact output.

How programs run (one `graphexec serve` for the module, a real process on a free port):

* python: in this process, in an empty working directory, first with no GRAPHEXEC_TARGET (in-process
  sessions), then with GRAPHEXEC_TARGET set to the server, so that every plain `tf.Session()` is remote.
  Both runs must print the same.
* js: `node app.js` in an empty directory whose `node_modules/@graphexec/client` is this checkout's
  `client/node` (its dependencies installed by `npm ci`), with GRAPHEXEC_TARGET set to the server.
* sh: `bash -euo pipefail` in the repository root, with GRAPHEXEC_TARGET set to the server (and pip
  refusing to install outside a virtualenv, should a block that installs lose its no-run).

Path-like code spans (`graphexec/ir.py`, `deploy/k8s/overlays/`) and relative links, anchors included,
must name things that exist.
"""
from __future__ import annotations

import contextlib
import fnmatch
import io
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

import graphexec as tf

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = ROOT / "client" / "node"
PROGRAMS = {"python", "js", "sh"}
ALIASES = {"py": "python", "python3": "python", "javascript": "js", "node": "js", "mjs": "js", "bash": "sh",
           "shell": "sh", "console": "sh", "zsh": "sh"}
OPTIONS = re.compile(r"(?:excerpt=(?P<excerpt>\S+))?\s*(?:(?P<no_run>no-run)(?::\s*(?P<reason>.*))?)?")
PRINTS = {"python": re.compile(r"\bprint\(.*#\s*(.*?)\s*$"), "js": re.compile(r"\bconsole\.log\(.*//\s*(.*?)\s*$")}
PATH_LIKE = re.compile(r"^\.?[\w-]+(/[\w.-]+)+(\.(py|md|js|json|proto|ya?ml|sh|toml|txt|binpb)|/)$")
SKIPPED = {"node_modules", ".git", "__pycache__", ".pytest_cache"}
GENERATED_DOCS = ("bench/results/",)  # tables a program writes


def repository_paths() -> set[str]:
    """Every file and folder of the checkout, as POSIX paths relative to its root (folders end in /)."""
    paths = set()
    for folder, folders, files in os.walk(ROOT):
        # a virtual environment (scripts/venv.sh makes .venv here) holds other projects' files
        folders[:] = [f for f in folders if f not in SKIPPED and not os.path.exists(os.path.join(folder, f, "pyvenv.cfg"))]
        relative = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        paths.update(f"{prefix}{name}/" for name in folders)
        paths.update(f"{prefix}{name}" for name in files)
    return paths


PATHS = repository_paths()


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    kind: str  # "fence", or "code_block" for an indented block
    language: str
    options: str  # the info string after the language
    source: str
    output: str | None = None  # the ```text output block that follows a program

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def _options(self):
        return OPTIONS.fullmatch(self.options)

    @property
    def no_run_reason(self) -> str | None:
        match = self._options
        return (match.group("reason") or "") if match and match.group("no_run") else None

    @property
    def excerpt_of(self) -> str | None:
        return self._options.group("excerpt") if self._options else None

    @property
    def runs(self) -> bool:
        return self.language in PROGRAMS and self.no_run_reason is None

    def problem(self) -> str | None:
        """Why this block breaks the convention, or None."""
        if self.kind != "fence":
            return "indented code block: fence it and name its language (```sh no-run: why, ```text, ...)"
        if not self.language:
            return "fence without a language"
        if self.language in ALIASES:
            return f"write ```{ALIASES[self.language]}, not ```{self.language}"
        if self.options == "output":
            return None if self.language == "text" else "only a ```text block can be an output"
        if self._options is None:
            return f"unknown options {self.options!r} (excerpt=PATH, then no-run: why; or output)"
        if self.no_run_reason == "":
            return "no-run needs a reason: ```LANG no-run: why"
        if self.excerpt_of is not None and not (ROOT / self.excerpt_of).is_file():
            return f"excerpt of a missing file {self.excerpt_of}"
        return None


def parse(doc: Path) -> tuple[list[Block], list]:
    """(the code blocks of `doc`, its markdown-it tokens)."""
    tokens = MarkdownIt("commonmark").parse(doc.read_text())
    blocks: list[Block] = []
    for token in tokens:
        if token.type not in ("fence", "code_block"):
            continue
        language, _, options = token.info.strip().partition(" ")
        block = Block(doc, token.map[0] + 1, token.type, language, options.strip(), token.content)
        previous = blocks[-1] if blocks else None
        if block.language == "text" and block.options == "output" and previous and previous.runs:
            blocks[-1] = Block(**{**previous.__dict__, "output": block.source})
        blocks.append(block)
    return blocks, tokens


DOCS = {ROOT / p: parse(ROOT / p) for p in sorted(PATHS) if p.endswith(".md") and not p.startswith(GENERATED_DOCS)}
BLOCKS = [block for blocks, _ in DOCS.values() for block in blocks]


def blocks_to_run(language: str) -> list:
    return [pytest.param(b, id=b.where) for b in BLOCKS if b.language == language and b.runs]


def collapse(text: str) -> str:
    return " ".join(text.split())


def check_output(block: Block, printed: str) -> None:
    """The block's stated output (print comments, a ```text output block) against what it printed."""
    stated = [m.group(1) for line in block.source.splitlines() if (m := PRINTS[block.language].search(line))]
    if stated:
        assert collapse(printed) == collapse(" ".join(stated)), (
            f"{block.where}: the comments say it prints\n{stated}\nbut it printed\n{printed}")
    if block.output is not None:
        assert printed.rstrip() == block.output.rstrip(), (
            f"{block.where}: the ```text output block differs from what it printed:\n{printed}")


# -- the convention ------------------------------------------------------------------------------------
def test_every_code_block_is_fenced_and_either_runs_or_says_why_not():
    problems = [f"{b.where}: {p}" for b in BLOCKS if (p := b.problem())]
    assert not problems, "\n".join(problems)
    assert blocks_to_run("python") and blocks_to_run("js")


@pytest.mark.parametrize("block", [pytest.param(b, id=b.where) for b in BLOCKS if b.excerpt_of])
def test_excerpts_are_quoted_verbatim(block):
    assert textwrap.dedent(block.source).strip() in (ROOT / block.excerpt_of).read_text(), (
        f"{block.where} no longer matches {block.excerpt_of}")


def test_stated_output_that_differs_fails():
    """The checker itself: a wrong print comment and a wrong output block are both caught."""
    block = Block(ROOT / "README.md", 1, "fence", "python", "", "print(1 + 1)  # 2\n", output="2\n")
    check_output(block, "2\n")
    with pytest.raises(AssertionError, match="comments say"):
        check_output(block, "3\n")
    with pytest.raises(AssertionError, match="output block differs"):
        check_output(Block(**{**block.__dict__, "source": "print(1 + 1)\n", "output": "2 \n3\n"}), "2\n")


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_every_example_runs_in_some_test(example):
    """Examples are run by the tests of what they show (quickstart: test_remote_session, digits: test_digits)."""
    runners = [p.name for p in (ROOT / "tests").rglob("test_*.py") if p.name != Path(__file__).name
               and example in p.read_text()]
    assert runners, f"examples/{example} is run by no test"


# -- running the programs ------------------------------------------------------------------------------
def run_python(block: Block, workdir: Path) -> str:
    """exec the block as its own program (line numbers in tracebacks are the document's)."""
    code = compile("\n" * block.line + block.source, str(block.doc), "exec")
    workdir.mkdir()
    printed = io.StringIO()
    before = os.getcwd()
    os.chdir(workdir)  # contextlib.chdir is Python 3.11+
    try:
        with contextlib.redirect_stdout(printed):
            exec(code, {"__name__": "__main__"})  # noqa: S102 - the repository's own documentation
    finally:
        os.chdir(before)
    return printed.getvalue()


@pytest.mark.parametrize("block", blocks_to_run("python"))
def test_python_block_runs_in_process_and_on_a_server(block, embedded, tmp_path, monkeypatch):
    monkeypatch.delenv("GRAPHEXEC_TARGET", raising=False)
    local = run_python(block, tmp_path / "in-process")
    check_output(block, local)
    tf.reset_default_graph()
    tf.Session.reset(embedded)  # each block is its own program: no variables left by the blocks before it
    monkeypatch.setenv("GRAPHEXEC_TARGET", embedded)
    remote = run_python(block, tmp_path / "remote")
    assert remote == local, f"{block.where} prints differently on {embedded}"


@pytest.fixture(scope="module")
def node_project(tmp_path_factory) -> Path:
    """An empty project that has this checkout's Node client installed as `@graphexec/client`."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_CLIENT / "node_modules").is_dir():
        pytest.skip("the Node client's dependencies are not installed: cd client/node && npm ci")
    project = tmp_path_factory.mktemp("node-app")
    (project / "node_modules" / "@graphexec").mkdir(parents=True)
    (project / "node_modules" / "@graphexec" / "client").symlink_to(NODE_CLIENT, target_is_directory=True)
    return project


@pytest.mark.parametrize("block", blocks_to_run("js"))
def test_js_block_runs_with_the_node_client_on_a_server(block, embedded, node_project):
    (node_project / "app.js").write_text(block.source)
    tf.Session.reset(embedded)  # each block is its own program: no variables left by the blocks before it
    result = subprocess.run(["node", "app.js"], check=False, cwd=node_project, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "GRAPHEXEC_TARGET": embedded})
    assert result.returncode == 0, f"{block.where}:\n{result.stderr}"
    check_output(block, result.stdout)


def run_sh(source: str, target: str, bin_dir: Path) -> subprocess.CompletedProcess:
    # `python` as the docs say, whatever the machine calls it: the base interpreter with this one's packages on
    # PYTHONPATH, outside any virtual environment, so that PIP_REQUIRE_VIRTUALENV makes a block that installs
    # packages fail here instead of changing this machine or the project's .venv.
    paths = sysconfig.get_paths()
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(getattr(sys, "_base_executable", sys.executable))} "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "GRAPHEXEC_TARGET": target, "PIP_REQUIRE_VIRTUALENV": "1",
           "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(ROOT), paths["purelib"], paths["platlib"]])),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", source], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)


@pytest.mark.parametrize("block", blocks_to_run("sh"))
def test_sh_block_runs(block, embedded, tmp_path):
    result = run_sh(block.source, embedded, tmp_path)
    assert result.returncode == 0, f"{block.where}:\n{result.stdout}\n{result.stderr}"


def test_sh_blocks_run_against_the_server_and_cannot_install(embedded, tmp_path):
    """The sh runner itself (no sh block in the docs runs today: each one installs, or needs a tool)."""
    (tmp_path / "one").mkdir()
    program = "import graphexec as tf; sess = tf.Session(); print(type(sess).__name__, sess.run(tf.constant(2) + 3))"
    session = run_sh(f'python -c "{program}"', embedded, tmp_path / "one")
    assert (session.returncode, session.stdout) == (0, "RemoteSession 5\n"), session.stderr
    (tmp_path / "two").mkdir()
    # numpy is installed, so without the guard this succeeds and changes nothing
    install = run_sh("python -m pip install --no-index --no-deps numpy\necho unreachable", embedded, tmp_path / "two")
    assert install.returncode != 0 and "unreachable" not in install.stdout
    assert "virtualenv" in install.stderr, install.stderr


# -- references ----------------------------------------------------------------------------------------
def github_anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives the headings of `doc`."""
    tokens = DOCS[doc][1] if doc in DOCS else parse(doc)[1]
    anchors = set()
    for heading, inline in itertools.pairwise(tokens):
        if heading.type == "heading_open":
            text = "".join(child.content for child in inline.children if child.type in ("text", "code_inline"))
            anchors.add(re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-"))
    return anchors


IGNORED = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines() if line.strip()[:1] not in "#"]


def names_a_path(text: str) -> bool:
    """A path the docs may write relative to the root or to any folder (`ops/registry.py`, `graph.proto`),
    or one that git ignores because programs write it (`bench/results/latest.json`)."""
    relative = text.removeprefix("./")
    return (any(p == relative or p.endswith(f"/{relative}") for p in PATHS)
            or any(fnmatch.fnmatch(relative, pattern) for pattern in IGNORED))


def references(tokens):
    """(kind, text) of every link target and code span in the tokens."""
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open":
                yield "link", child.attrs["href"]
            elif child.type == "code_inline":
                yield "code", child.content


@pytest.mark.parametrize("doc", [pytest.param(d, id=str(d.relative_to(ROOT))) for d in DOCS])
def test_links_and_paths_name_things_that_exist(doc):
    missing = []
    for kind, text in references(DOCS[doc][1]):
        if kind == "link" and not re.match(r"[a-z]+:", text):
            path, _, anchor = text.partition("#")
            target = (doc.parent / path).resolve() if path else doc
            if not target.exists():
                missing.append(f"link {text}: no {target}")
            elif anchor and target.suffix == ".md" and anchor not in github_anchors(target):
                missing.append(f"link {text}: no heading #{anchor} in {target.name}")
        elif kind == "code" and PATH_LIKE.match(text) and not names_a_path(text):
            missing.append(f"path `{text}` does not exist")
    assert not missing, f"{doc.relative_to(ROOT)}:\n" + "\n".join(missing)
