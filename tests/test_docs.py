"""README.md and the manual in docs/ stay true to the tree: every relative link and image resolves (a
`#anchor` into a markdown page names one of its headings, slugged as GitHub does), every `python -m app …`
example parses with the app's real argument parser (parsed only, never run), README stays short, its
project layout names only what exists (and every package there is), and the project paths, modules and
names the pages mention exist (read from the source, never imported)."""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import build_parser, with_default_command

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
SHELL_FENCES = {"bash", "sh", "shell", "console"}
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
APP_COMMAND = re.compile(r"(?:^|[\s(])(?:\S*/)?python3?\s+-m\s+app(?=\s|$)(.*)$")
LINE_STARTING_WITH_APP = re.compile(r"^\s*(?:\S*/)?python3?\s+-m\s+app(?=\s|$)")
COMMAND_WORD = re.compile(r"^[a-z][a-z-]*$")
MAKE_RUN_ARGS = re.compile(r"\bmake\s+run\s+ARGS=(\"[^\"]*\"|'[^']*')")
ELLIPSIS = "…"


@dataclass(frozen=True)
class Line:
    page: Path
    number: int
    text: str
    fence: str | None = None  # the code block's language ("" unlabelled); None outside code blocks

    @property
    def in_code_block(self) -> bool:
        return self.fence is not None


def lines_of(page: Path) -> list[Line]:
    out, fence = [], None
    for number, text in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        opening = FENCE.match(text)
        if opening:
            fence = opening.group(2) if fence is None else None
            continue
        out.append(Line(page, number, text, fence))
    return out


def where(line: Line) -> str:
    return f"{line.page.relative_to(ROOT)}:{line.number}"


# ---- headings and GitHub's anchors ----

def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (markdown removed) lower-cased, punctuation dropped
    (letters, digits, '_', '-' and spaces stay), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images → their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in lines_of(page):
        match = None if line.in_code_block else HEADING.match(line.text)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_github_slug_matches_githubs_anchors() -> None:
    assert github_slug("The paper's model, live: paste-back, relative motion, smoothing") == \
        "the-papers-model-live-paste-back-relative-motion-smoothing"
    assert github_slug("Start-up and bf16 (AMD EPYC Zen 5: AVX-512 + AVX512-BF16, no AMX; 2 shared cores)") == \
        "start-up-and-bf16-amd-epyc-zen-5-avx-512--avx512-bf16-no-amx-2-shared-cores"
    assert github_slug("`WarpConfig` and **Retargeting** → [links](x.md)") == "warpconfig-and-retargeting--links"


def test_anchors_count_repeated_headings_as_github_does(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A\n## Measured\n```\n# not a heading\n```\n### Measured\n")
    assert anchors_of(page) == {"a", "measured", "measured-1"}


# ---- links and images ----

def targets_in(line: Line) -> list[str]:
    if line.in_code_block:
        return []
    text = INLINE_CODE.sub("", line.text)  # `[x](y)` inside code is not a link
    found = LINK.findall(text) + HTML_LINK.findall(text)
    reference = REFERENCE_LINK.match(text)
    return found + ([reference.group(1)] if reference else [])


def broken_link(page: Path, target: str) -> str | None:
    """Why `target` (as written in `page`) does not resolve, or None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
        return None
    path_part, _, anchor = target.partition("#")
    file = (page.parent / path_part).resolve() if path_part else page
    if not file.is_relative_to(ROOT):
        return f"{target} points outside the repository"
    if not file.exists():
        return f"{target}: {file.relative_to(ROOT)} does not exist"
    if anchor and file.suffix == ".md" and anchor not in anchors_of(file):
        return f"{target}: {file.relative_to(ROOT)} has no heading with the anchor #{anchor}"
    return None


def test_the_link_checker_sees_a_broken_link_and_a_broken_anchor() -> None:
    page = DOCS / "app.md"
    assert broken_link(page, "media/live.png") is None
    assert broken_link(page, "warp.md#retargeting-controls") is None
    assert "does not exist" in broken_link(page, "media/no-such.png")
    assert "no heading" in broken_link(page, "warp.md#no-such-section")
    assert "no heading" in broken_link(page, "#no-such-section")
    assert broken_link(page, "https://example.org/x") is None
    assert targets_in(Line(page, 1, "see `[a](b)` and [c](d.md#e) ![f](g.png) <img src=\"h.png\">")) == \
        ["d.md#e", "g.png", "h.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page: Path) -> None:
    broken = [f"{where(line)}: {why}" for line in lines_of(page) for target in targets_in(line)
              if (why := broken_link(page, target))]
    assert not broken, "\n".join(broken)


def test_every_page_of_the_manual_is_linked_from_its_index() -> None:
    index = DOCS / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for line in lines_of(index) for t in targets_in(line)}
    orphans = [p.name for p in DOCS.glob("*.md") if p != index and p.resolve() not in linked]
    assert not orphans, f"docs/README.md does not link {orphans}"
    assert index.resolve() in {(ROOT / t).resolve() for line in lines_of(README) for t in targets_in(line)}


# ---- `python -m app …` examples ----

def logical_lines(page: Path) -> list[Line]:
    """Code blocks' lines with `\\` continuations joined, and every inline code span outside them."""
    out: list[Line] = []
    pending: Line | None = None
    for line in lines_of(page):
        if line.in_code_block:
            text = line.text if pending is None else pending.text + " " + line.text.strip()
            start = line if pending is None else pending
            if text.rstrip().endswith("\\"):
                pending = Line(page, start.number, text.rstrip()[:-1], line.fence)
            else:
                pending = None
                out.append(Line(page, start.number, text, line.fence))
        else:
            out.extend(Line(page, line.number, span) for _, span in INLINE_CODE.findall(line.text))
    return out


def app_arguments(line: Line) -> list[list[str]]:
    """The argument lists of every `python -m app …` (and `make run ARGS="…"`) in one line: in inline
    code, in shell code blocks, and in unlabelled blocks on lines that start with the command (elsewhere
    there, as in README's layout, it is prose)."""
    if line.fence not in (None, *SHELL_FENCES) and not LINE_STARTING_WITH_APP.match(line.text):
        return []
    found = []
    command = APP_COMMAND.search(line.text)
    if command:
        found.append(shlex.split(command.group(1), comments=True))
    for args in MAKE_RUN_ARGS.findall(line.text):
        found.append(shlex.split(args[1:-1]))
    return found


def with_placeholders(argv: list[str]) -> list[str]:
    """An example's words as the parser should see them. `[--flag value]` shows an optional part: it is
    parsed as given. `…` after an option is that option's value, elsewhere it elides arguments (dropped).
    Capitalised placeholders (PACK, OUT, DATA) are ordinary words."""
    out: list[str] = []
    for word in argv:
        word = word.strip("[]")
        if word == ELLIPSIS and not (out and out[-1].startswith("-")):
            continue
        if word:
            out.append(word)
    return out


def parse_error(argv: list[str], elided: bool = False) -> str | None:
    """The app's parser's complaint about argv (parsed as `python -m app` would), or None. With `elided`
    (the example left arguments out with `…`) no argument is required; the ones written must still fit."""
    parser = build_parser()
    if elided:
        nothing_required(parser)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(with_default_command(argv))
    except SystemExit as exc:
        if exc.code == 0:
            return None
        return (stderr.getvalue().strip().splitlines() or [f"exit {exc.code}"])[-1]
    return None if callable(getattr(args, "func", None)) else "parsed, but names no command to run"


def nothing_required(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                nothing_required(sub)
        else:
            action.required = False


def app_examples() -> list[tuple[str, list[str]]]:
    return [(where(line), argv) for page in PAGES for line in logical_lines(page) for argv in app_arguments(line)]


def example_error(argv: list[str]) -> str | None:
    """What is wrong with one example. A mention of a command by name only (`python -m app render` in
    prose) must name a real command; a full example must parse."""
    if argv and all(COMMAND_WORD.match(word) for word in argv):
        return parse_error([*argv, "--help"])
    return parse_error(with_placeholders(argv), elided=ELLIPSIS in argv)


def test_the_examples_are_found_and_a_wrong_one_is_caught() -> None:
    examples = app_examples()
    commands = {argv[0] for _, argv in examples if argv and not argv[0].startswith("-")}
    assert {"gui", "render", "align", "import-weights", "generate", "bench", "train"} <= commands
    assert sum(1 for spot, _ in examples if spot.startswith("docs/")) >= 30
    assert parse_error(["render", "--driving", "talk.mp4", "--target", "portrait.png", "-o", "out.mp4"]) is None
    assert "required" in parse_error(["render", "--driving", "talk.mp4", "-o", "out.mp4"])
    assert "unrecognized" in parse_error(["render", "--driving", "a.mp4", "--target", "b.png", "-o", "c", "--nope"])
    assert "from 0 to 2" in parse_error(["render", "--driving", "a", "--target", "b", "-o", "c", "--mouth", "3"])
    line = Line(README, 1, "x .venv/bin/python -m app gui --source clip.mp4 [--weights PACK] # comment", "bash")
    assert app_arguments(line) == [["gui", "--source", "clip.mp4", "[--weights", "PACK]"]]
    assert with_placeholders(app_arguments(line)[0]) == ["gui", "--source", "clip.mp4", "--weights", "PACK"]
    assert app_arguments(Line(README, 1, 'make run ARGS="--source clip.mp4"')) == [["--source", "clip.mp4"]]
    assert app_arguments(Line(README, 1, "python -m app.gui.screenshots CLIP PORTRAIT docs/media", "bash")) == []
    assert app_arguments(Line(README, 1, "benchmarks/ figures (python -m app bench, python -m x)", "")) == []
    assert with_placeholders(["--source", "…"]) == ["--source", "…"]
    assert example_error(["train", "run", "DATA", "-o", "RUN", "…", "--resume"]) is None  # … elides --restyle
    assert example_error(["train", "run", "DATA", "-o", "RUN", "--resume"]) is not None
    assert "unrecognized" in example_error(["train", "run", "DATA", "…", "--restart"])
    assert example_error(["import-weights"]) is None  # the command named in prose
    assert "invalid choice" in example_error(["import-weight"])


def test_every_python_m_app_example_parses() -> None:
    wrong = [f"{spot}: python -m app {shlex.join(argv)}\n    {error}" for spot, argv in app_examples()
             if (error := example_error(argv))]
    assert not wrong, "\n".join(wrong)


# ---- README: short, and its layout is the tree ----

def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the manual goes in docs/"


def test_readme_quick_start_is_the_two_make_commands() -> None:
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```", 2)[1]
    assert [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()] == ["make run", "make test"]


def layout_entries() -> list[tuple[int, str]]:
    """(line, path) for every name in README's layout block: a name at column 0 is a top-level path, one
    indented by two spaces lies under the last top-level folder; deeper lines are descriptions."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Project layout")
    opening = next(i for i in range(start, len(lines)) if FENCE.match(lines[i]))
    closing = next(i for i in range(opening + 1, len(lines)) if FENCE.match(lines[i]))
    entries, parent = [], ""
    for number in range(opening + 1, closing):
        text = lines[number]
        indent = len(text) - len(text.lstrip(" "))
        if not text.strip() or indent not in (0, 2):
            continue
        name = text.split()[0]
        path = name if indent == 0 else parent + name
        if indent == 0:
            parent = name if name.endswith("/") else ""
        entries.append((number + 1, path))
    return entries


def test_readme_layout_names_only_what_exists() -> None:
    entries = layout_entries()
    assert len(entries) >= 15
    missing = [f"README.md:{n}: {path}" for n, path in entries
               if not (ROOT / path).exists() or (path.endswith("/") and not (ROOT / path).is_dir())]
    assert not missing, "the layout names what the tree does not have:\n" + "\n".join(missing)


def test_readme_layout_names_every_package() -> None:
    named = {path.rstrip("/") for _, path in layout_entries()}
    inits = [*ROOT.glob("*/__init__.py"), *ROOT.glob("engine/*/__init__.py")]
    packages = sorted({init.parent.relative_to(ROOT).as_posix() for init in inits} - named)
    assert not packages, f"README's layout does not name {packages}"


# ---- paths, modules and names the pages mention ----

PROJECT_DIRS = ("app/", "engine/", "models/", "training/", "benchmarks/", "build_spec/", "tests/", "scripts/", "docs/",
                ".ci/")
REPO_PATH = re.compile(r"(?<![\w./-])((?:%s)[\w./*-]*)" % "|".join(re.escape(d) for d in PROJECT_DIRS))
PACKAGES = ("app", "engine", "models", "training", "benchmarks")
DOTTED = re.compile(r"(?<![\w./-])((?:%s)(?:\.\w+)+)" % "|".join(PACKAGES))
FROM_IMPORT = re.compile(r"\bfrom\s+([\w.]+)\s+import\s+([\w, ]+)")
FILE_SUFFIXES = {"md", "py", "png", "jpg", "gif", "json", "txt", "mp4", "safetensors", "pt", "pkl", "npy", "spec", "sh"}


def test_every_project_path_the_pages_name_exists() -> None:
    named = [(where(line), path.rstrip(".,;:)")) for page in PAGES for line in lines_of(page)
             for path in REPO_PATH.findall(line.text)]
    assert len(named) >= 40
    missing = [f"{spot}: {path}" for spot, path in named if not any(ROOT.glob(path))]
    assert not missing, "the pages name files the tree does not have:\n" + "\n".join(missing)


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for file in (base.with_suffix(".py"), base / "__init__.py"):
        if file.is_file():
            return file
    return None


def top_level_names(file: Path) -> set[str]:
    """What `from module import NAME` can take from a module, read from its source (never imported)."""
    names: set[str] = set()
    body = list(ast.parse(file.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):
            body.extend([*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])])
    if file.name == "__init__.py":
        names.update(p.stem for p in file.parent.glob("*.py") if p.stem != "__init__")
        names.update(p.parent.name for p in file.parent.glob("*/__init__.py"))
    return names


def mentioned_module_error(dotted: str) -> str | None:
    """Why `package.module.name…` does not name a module (and a name in it), or None."""
    parts = dotted.split(".")
    if parts[-1] in FILE_SUFFIXES:
        return None  # a file name such as app.md
    for cut in range(len(parts), 0, -1):
        file = module_file(".".join(parts[:cut]))
        if file is None:
            continue
        if cut == len(parts) or parts[cut] in top_level_names(file):
            return None
        return f"{'.'.join(parts[:cut])} has no {parts[cut]}"
    return f"no module {dotted}"


def test_the_module_checker_sees_a_wrong_name() -> None:
    assert mentioned_module_error("engine.face.align.align_face") is None
    assert mentioned_module_error("engine.warp.WarpConfig") is None  # re-exported by the package
    assert mentioned_module_error("engine.face.align.no_such_name") == "engine.face.align has no no_such_name"
    assert mentioned_module_error("engine.no_such_module") == "engine has no no_such_module"
    assert mentioned_module_error("app.md") is None


def test_every_module_and_name_the_pages_run_or_import_exists() -> None:
    wrong = []
    for page in PAGES:
        for line in logical_lines(page):
            if line.fence not in (None, "python", *SHELL_FENCES):
                continue
            mentions = DOTTED.findall(line.text)  # python -m benchmarks.x, engine.runtime.weights.load_paper_pack
            mentions += [f"{module}.{name.strip()}" for module, names in FROM_IMPORT.findall(line.text)
                         for name in names.split(",") if name.strip()]
            wrong += [f"{where(line)}: {m}: {why}" for m in mentions if (why := mentioned_module_error(m))]
    assert not wrong, "\n".join(wrong)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(first line, source) of every ```python block of a page."""
    blocks: dict[int, list[str]] = {}
    previous = None
    for line in lines_of(page):
        if line.fence == "python":
            if previous is None or previous.fence != "python" or previous.number != line.number - 1:
                blocks[line.number] = []
            blocks[max(blocks)].append(line.text)
        previous = line
    return [(number, "\n".join(source)) for number, source in blocks.items()]


def test_every_python_example_is_python() -> None:
    wrong = []
    for page in PAGES:
        for number, source in python_blocks(page):
            try:
                ast.parse(source)
            except SyntaxError as exc:
                wrong.append(f"{where(Line(page, number))}: {exc}")
    assert sum(len(python_blocks(page)) for page in PAGES) >= 2
    assert not wrong, "\n".join(wrong)


OTHER_MODULE_RUN = re.compile(r"\bpython3?\s+-m\s+((?:%s)\.[\w.]+)(.*)$" % "|".join(PACKAGES))


def declared_options(file: Path) -> set[str]:
    """The option strings a script declares (`add_argument("--media", …)`), read from its source."""
    return {arg.value for node in ast.walk(ast.parse(file.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
            for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}


def test_every_option_given_to_a_project_script_is_one_it_declares() -> None:
    """`python -m benchmarks.warp_bench --media …`: the scripts build their parsers inside main(), so their
    options are read from their source instead of parsed."""
    runs, wrong = 0, []
    for page in PAGES:
        for line in logical_lines(page):
            if line.fence not in (None, *SHELL_FENCES):
                continue
            for module, rest in OTHER_MODULE_RUN.findall(line.text):
                runs += 1
                file = module_file(module)
                options = {word.split("=")[0] for word in rest.split() if word.startswith("--")}
                unknown = sorted(options - declared_options(file)) if file else [f"(no module {module})"]
                wrong += [f"{where(line)}: python -m {module} {option}" for option in unknown]
    assert runs >= 5
    assert not wrong, "options the scripts do not declare:\n" + "\n".join(wrong)
