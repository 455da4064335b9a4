"""Every shell command of README.md and docs/*.md still matches the code.

Commands are the lines of fenced code blocks marked `sh`, `bash` or `shell` (blocks marked `text` hold
synopses and are not checked). For each command:
- `make T`: the Makefile has the target T;
- `python SCRIPT ...`, `python -m MODULE ...` (also behind `torchrun`, `srun`, `nice`, env assignments):
  the script or module exists and the entry point's own argument parser accepts the arguments
  (`parse_entry_point`, which stops the entry point as soon as its parser has parsed them);
- `sh FILE`, and any argument naming a file of the repository (`confs/`, `recipes/`, `ckpt/`, ...): the file
  exists.
A command that needs what a fresh clone lacks (real DESED, downloaded weights, a GPU, a run made first)
ends with a comment `# needs <what>`; such a command gets the checks above only. An unmarked command must
run as written on a fresh clone, so it may not hold placeholders (`...`, `PATH`, upper-case file names).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCKS = {"sh", "bash", "shell"}
NEEDS_MARKER = re.compile(r"#\s*needs\s+\S")
REPO_PATH = re.compile(r"^(?:\./)?(confs|recipes|ckpt|benchmarks|misc|docs|desed_task|tests)/[^\s*{}]+$")
PLACEHOLDER = re.compile(r"(^|[=/])(\.\.\.|PATH\b|[A-Z][A-Z0-9_]*(\.[a-z]+)$)")
LAUNCHERS = {"srun", "nice", "OMP_NUM_THREADS"}


@dataclass(frozen=True)
class DocCommand:
    source: str
    line: int
    text: str

    @property
    def needs(self) -> bool:
        return bool(NEEDS_MARKER.search(self.text))

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.text}"


def doc_commands(paths=DOCS) -> list[DocCommand]:
    """The commands of the shell code blocks of `paths`, continuation lines joined, comment lines skipped."""
    commands = []
    for path in paths:
        language, pending, start = None, "", 0
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            fence = re.match(r"^```(\w*)\s*$", line.strip())
            if fence:
                language = None if language is not None else fence.group(1)
                continue
            if language not in SHELL_BLOCKS or (not pending and (not line.strip() or line.lstrip().startswith("#"))):
                continue
            start = start if pending else number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            commands.append(DocCommand(str(path.relative_to(REPO)), start, (pending + line).strip()))
            pending = ""
    return commands


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return {match.group(1) for match in re.finditer(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, flags=re.M)}


class _Parsed(Exception):
    def __init__(self, namespace):
        super().__init__("parsed")
        self.namespace = namespace


def parse_entry_point(target: str, argv: list[str], module: bool) -> argparse.Namespace:
    """Run the entry point `target` (a module name, or a script path relative to the repository) with
    `argv` until its argument parser has parsed them, and return the namespace; nothing else runs.

    This is the one place that knows how entry points get their arguments: it intercepts the first
    `ArgumentParser.parse_args` / `parse_known_args` call. An argparse rejection raises AssertionError
    with argparse's message.
    """
    original_parse_args = argparse.ArgumentParser.parse_args
    original_parse_known = argparse.ArgumentParser.parse_known_args
    inside = []

    def parse_args(self, args=None, namespace=None):
        inside.append(True)
        try:
            result = original_parse_args(self, args, namespace)
        finally:
            inside.pop()
        raise _Parsed(result)

    def parse_known_args(self, args=None, namespace=None):
        result = original_parse_known(self, args, namespace)
        if inside:
            return result
        raise _Parsed(result[0])

    saved_argv, errors = sys.argv, io.StringIO()
    argparse.ArgumentParser.parse_args = parse_args
    argparse.ArgumentParser.parse_known_args = parse_known_args
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            if module:
                sys.argv = [target, *argv]
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                sys.argv = [str(REPO / target), *argv]
                runpy.run_path(str(REPO / target), run_name="__main__")
    except _Parsed as parsed:
        return parsed.namespace
    except SystemExit as exit_:
        raise AssertionError(f"{target} rejects the arguments (exit {exit_.code}): {errors.getvalue().strip()}") from None
    finally:
        argparse.ArgumentParser.parse_args = original_parse_args
        argparse.ArgumentParser.parse_known_args = original_parse_known
        sys.argv = saved_argv
    raise AssertionError(f"{target} returned without parsing its arguments")


def strip_launchers(words: list[str]) -> list[str]:
    """Drop env assignments and launchers (`srun`, `nice -n N`, `torchrun <its options>`) before the program."""
    while words:
        head = words[0]
        if re.match(r"^[A-Z_][A-Z0-9_]*=", head):
            words = words[1:]
        elif head == "nice":
            words = words[3:] if len(words) > 2 and words[1] == "-n" else words[1:]
        elif head in LAUNCHERS:
            words = words[1:]
        elif head == "torchrun":
            script = next(index for index, word in enumerate(words) if word.endswith(".py"))
            words = ["python", *words[script:]]
        else:
            return words
    return words


def check_command(command: DocCommand) -> None:
    words = strip_launchers(shlex.split(command.text, comments=True))
    assert words, "empty command"
    for word in words:
        for value in (word, word.split("=", 1)[-1]):
            if REPO_PATH.match(value):
                assert (REPO / value).exists(), f"{value} does not exist"
    if not command.needs:
        held = [word for word in words if PLACEHOLDER.search(word)]
        assert not held, f"placeholders {held} in a command without a '# needs ...' marker"
    program, args = words[0], words[1:]
    if program == "make":
        missing = [target for target in args if not target.startswith("-") and "=" not in target
                   and target not in make_targets()]
        assert not missing, f"Makefile has no target {missing}"
    elif program in ("sh", "bash"):
        assert (REPO / args[0]).is_file(), f"{args[0]} does not exist"
    elif Path(program).name in ("python", "python3"):
        if args[0] == "-m":
            parse_entry_point(args[1], args[2:], module=True)
        else:
            assert (REPO / args[0]).is_file(), f"{args[0]} does not exist"
            parse_entry_point(args[0], args[1:], module=False)
    elif program.startswith(".venv/bin/"):
        files = [word for word in args if word.endswith(".ipynb")]
        assert all((REPO / name).is_file() for name in files), f"missing notebook among {files}"
    else:
        raise AssertionError(f"unknown program {program!r}: teach tests/test_docs_commands.py how to check it")


COMMANDS = doc_commands()


def test_the_docs_hold_commands():
    assert len(COMMANDS) >= 20 and any(command.needs for command in COMMANDS)
    assert {Path(command.source).name for command in COMMANDS} >= {"README.md", "evaluation.md", "inference.md"}


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.source}:{c.line}" for c in COMMANDS])
def test_command(command):
    check_command(command)


def test_relative_links_point_at_files():
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if not re.match(r"^[a-z]+:", target) and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
    assert not broken


def test_the_checks_catch_a_stale_flag_a_missing_config_and_a_missing_target():
    good = DocCommand("x.md", 1, "python -m desed_task.evaluation --ground_truth a.tsv --durations b.tsv --scores s")
    check_command(good)
    for text, message in [
        ("python -m desed_task.evaluation --ground_truth a.tsv --durations b.tsv --scores s --no_such_flag",
         "unrecognized arguments: --no_such_flag"),
        ("python recipes/dcase2022_task4_baseline/train_sed.py --conf_file confs/nowhere.yaml", "confs/nowhere.yaml"),
        ("make no-such-target", "no-such-target"),
        ("python -m desed_task.evaluation --ground_truth GT.tsv --durations b.tsv --scores s", "placeholders"),
    ]:
        with pytest.raises(AssertionError, match=re.escape(message)):
            check_command(DocCommand("x.md", 1, text))
    check_command(DocCommand("x.md", 1, "python -m desed_task.evaluation --ground_truth GT.tsv --durations b.tsv "
                                        "--scores s  # needs the files"))
