"""Every numeric flag of every command goes through one range-checked parser (engine.values): its extremes are
one `error:` line and exit 2 without the usage block, before any work; the engine and the GUI use the same kinds."""
from __future__ import annotations

import argparse
import math

import pytest

from app.cli import build_parser
from engine import values
from engine.values import BadValue

EXTREMES = ("0", "-1", str(2**40), "nan", "inf", "-inf", "text", "1e400", "2.5e9", "0x10", "")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path of sub-command words, parser) for every command and step, however deeply nested."""
    for name, sub in _subparsers(parser).items():
        yield (*path, name), sub
        yield from _commands(sub, (*path, name))


def _required_argv(parser: argparse.ArgumentParser, tested: argparse.Action) -> list[str]:
    """The least a command line needs besides the flag under test: positionals, required flags, one flag of
    each required group (not the tested flag's own group)."""
    argv: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action is tested:
            continue
        if not action.option_strings and action.nargs is None:
            argv.append("x")
        elif action.required:
            argv += [action.option_strings[-1], str(next(iter(action.choices))) if action.choices else "x"]
    for group in parser._mutually_exclusive_groups:
        if group.required and tested not in group._group_actions:
            action = group._group_actions[0]
            argv += [action.option_strings[-1], "x"]
    return argv


def _numeric_flags():
    cases = []
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if action.type in (int, float):
                cases.append(pytest.param(path, parser, action, id=f"{' '.join(path)} {action.option_strings[-1]}"))
            elif isinstance(action.type, values.Kind):
                cases.append(pytest.param(path, parser, action, id=f"{' '.join(path)} {action.option_strings[-1]}"))
    return cases


NUMERIC_FLAGS = _numeric_flags()


def test_the_walk_finds_the_commands_numeric_flags() -> None:
    ids = {case.id for case in NUMERIC_FLAGS}
    assert {"render --seed", "render --size", "render --expression", "render --head", "generate --seed",
            "generate --truncation", "align --size", "gui --camera", "bench --repeats", "train run --lr",
            "train prepare --sample-fps", "train prepare --rank"} <= ids
    assert len(ids) >= 30


@pytest.mark.parametrize("path,parser,action", NUMERIC_FLAGS)
def test_every_numeric_flag_is_range_checked_at_its_extremes(path, parser, action, capsys) -> None:
    assert isinstance(action.type, values.Kind), f"{action.option_strings[-1]} is a bare {action.type.__name__}"
    kind: values.Kind = action.type
    flag = action.option_strings[-1]
    for text in EXTREMES:
        argv = [*path, *_required_argv(parser, action), f"{flag}={text}"]
        try:
            expected = kind(text)
        except BadValue:
            expected = None
        if expected is None:
            with pytest.raises(SystemExit) as info:
                build_parser().parse_args(argv)
            err = capsys.readouterr().err
            assert info.value.code == 2, (argv, err)
            assert err.count("\n") == 1 and err.startswith(f"error: argument {flag}: expected "), (argv, err)
            assert "usage" not in err and "Traceback" not in err
        else:  # within the range (e.g. a seed of 0): parsed as the kind's number
            parsed = build_parser().parse_args(argv)
            assert getattr(parsed, action.dest) == expected and kind.low <= expected <= kind.high
    for text in (str(2**40), "nan", "inf", "text"):  # never a value of any kind
        with pytest.raises(BadValue):
            kind(text)


def test_defaults_are_within_their_kinds() -> None:
    for path, parser, action in (case.values for case in NUMERIC_FLAGS):
        if action.default is not None:
            assert action.type(action.default) == action.type(str(action.default)), (path, action.dest)


@pytest.mark.parametrize("kind,text,expected", [
    (values.SEED, "4294967295", 4294967295), (values.SEED, "1e3", 1000), (values.SEED, " 7 ", 7),
    (values.TRUNCATION, "0.7", 0.7), (values.EYES, "-1", -1.0), (values.OUTPUT_SIZE, "512.0", 512),
])
def test_kinds_accept_their_range(kind, text, expected) -> None:
    assert kind(text) == expected and type(kind(text)) is type(expected)


@pytest.mark.parametrize("kind,text", [
    (values.SEED, "4294967296"), (values.SEED, "1.5"), (values.SEED, "9" * 5000), (values.OUTPUT_SIZE, "63"),
    (values.EXPRESSION, "2.0001"), (values.SMOOTHING, "-0.0001"), (values.CAMERA_INDEX, "True"),
])
def test_kinds_refuse_what_is_outside(kind, text) -> None:
    with pytest.raises(BadValue, match=f"expected {kind.what}"):
        kind(text)


def test_restore_falls_back_to_the_default() -> None:
    assert values.EXPRESSION.restore("nan", 1.0) == 1.0
    assert values.EXPRESSION.restore(5.0, 1.0) == 1.0
    assert values.EXPRESSION.restore("0.5", 1.0) == 0.5
    assert values.SMOOTHING.restore(math.inf, 0.3) == 0.3


def test_the_engine_checks_seeds_on_every_path() -> None:
    """`render --target random` reaches TargetSpec.random; the GUI's and scripts' seeds too."""
    from engine.reenactor import TargetSpec
    from engine.render import parse_target

    with pytest.raises(BadValue, match="seed: expected a seed"):
        parse_target("random", seed=2**40)
    with pytest.raises(BadValue):
        TargetSpec.random(-1)
    assert TargetSpec.random(2**32 - 1).seed == 2**32 - 1


def test_generate_checks_seed_and_truncation_before_loading(tmp_path) -> None:
    from engine.stylegan.generate import generate

    missing = tmp_path / "not-read.safetensors"  # never opened: the values are refused first
    with pytest.raises(BadValue, match="seed"):
        generate(missing, seed=2**40)
    with pytest.raises(BadValue, match="truncation"):
        generate(missing, seed=1, truncation=float("nan"))


def test_retargeting_ranges_are_the_values_kinds() -> None:
    from engine.warp.retarget import RANGES

    assert RANGES == {name: (k.low, k.high) for name, k in values.RETARGETING.items()}


def test_gui_restores_a_default_for_a_saved_value_out_of_range(qtbot, settings, clip) -> None:
    from tests.support import LONG, open_window

    settings.set_option("mouth", float("nan"))
    settings.set_option("head", 7.5)
    settings.set_option("expression", "text")
    window = open_window(qtbot, settings, clip)
    qtbot.waitUntil(lambda: window.session.state.reenactor is not None, timeout=LONG)
    options = window.session.state.options
    assert (options["mouth"], options["head"], options["expression"]) == (1.0, 1.0, 1.0)
    assert window.retarget_panel.sliders["head"].value() == window.retarget_panel.sliders["head"].maximum() // 2


@pytest.mark.parametrize("argv", [
    ["render", "--target", "random", "--seed", str(2**40), "--weights", "pack.safetensors"],
    ["render", "--target", "portrait.png", "--size", "0"],
    ["render", "--target", "portrait.png", "--expression", "5"],
])
def test_the_real_command_line_is_one_error_line_before_any_work(argv, clip, tmp_path) -> None:
    from tests.hostile_corpus import run_app

    out = tmp_path / "out.mp4"
    outcome = run_app([*argv, "--driving", str(clip), "-o", str(out)], cwd=tmp_path)
    assert outcome.returncode == 2, outcome.stderr
    assert outcome.stderr.count("\n") == 1 and outcome.stderr.startswith("error: argument --"), outcome.stderr
    assert outcome.stdout == "" and not out.exists()
