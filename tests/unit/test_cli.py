"""The ``cueprobe`` command line: flags out of range are refused by name before any work."""

from __future__ import annotations

import argparse

import pytest

from cueprobe.cli import build_parser
from cueprobe.cli import main


def _flag(command: str, flag: str) -> argparse.Action:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(a for a in sub.choices[command]._actions if flag in a.option_strings)


# each was accepted (exit code 0, a wrong or empty result) or failed later with a
# traceback or a message naming no flag (the CLI review's findings)
@pytest.mark.parametrize(
    ("command", "flag", "bad", "good"),
    [
        ("make-table", "--confidence-level", ["1.5", "-1", "0", "1"], "0.95"),  # "150% CIs"
        ("plot-evaluation", "--confidence-level", ["1.5"], "0.9"),
        ("evaluate", "--alpha", ["2", "0", "-1"], "0.05"),  # tables written, then a crash
        ("evaluate", "--seed", ["-1"], "0"),
        ("train-reference", "--C", ["0", "-1"], "1e-3"),  # ZeroDivisionError / overflow
        ("train-reference", "--token-dropout", ["1.5", "-0.5"], "1"),
        ("train-reference", "--token-corrupt", ["1.01"], "0"),
        ("embed-reference", "--n-mels", ["0", "-4"], "1"),  # zero-width embeddings
        ("infer", "--n-shards", ["0", "-2"], "1"),  # answered everything, unsharded
        ("infer", "--shard", ["-1"], "0"),
        ("features", "--threads", ["0"], "2"),
        ("tokens", "--separator", [""], " "),  # ENERGY=HIGHPITCH=HIGH...
        ("condition", "--seed", ["-3"], "3"),
        ("demo", "--n-per-speaker", ["0"], "1"),
    ],
)
def test_a_flag_out_of_range_is_refused(command, flag, bad, good):
    parse = _flag(command, flag).type
    for value in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(value)
    parse(good)


def test_the_refusal_names_the_flag_and_its_range(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--alpha", "2"])
    assert exit_.value.code == 2
    assert "argument --alpha: must be < 1, got 2" in capsys.readouterr().err


def test_a_shard_past_the_shards_is_refused(tmp_path, capsys):
    out, check = str(tmp_path / "o.parquet"), str(tmp_path / "o.json")  # never in the cwd
    argv = ["infer", "--manifest", "m", "--condition", "c", "--out", out, "--check-out", check]
    argv += ["--model-config", "{}", "--labels", "{}", "--prompts", "{}", "--splits", "[]"]
    code = main([*argv, "--shard", "3", "--n-shards", "1"])
    assert code == 1
    assert "--shard 3 must be below --n-shards 1" in capsys.readouterr().err


@pytest.mark.parametrize(("shard", "n_shards"), [(1, 1), (2, 2), (5, 2)])
def test_a_shard_at_or_past_n_shards_is_refused(tmp_path, capsys, shard, n_shards):
    """Shards count from 0: `--shard 1 --n-shards 1` would have answered every utterance
    as if it were the only shard (the test above, 3 of 1, left the boundary untested)."""
    out = str(tmp_path / "o.parquet")
    argv = ["infer", "--manifest", "m", "--condition", "c", "--out", out]
    argv += ["--model-config", "{}", "--labels", "{}", "--prompts", "{}", "--splits", "[]"]
    assert main([*argv, "--shard", str(shard), "--n-shards", str(n_shards)]) == 1
    assert f"--shard {shard} must be below --n-shards {n_shards}" in capsys.readouterr().err


def test_labels_are_a_json_list_or_mapping_in_every_stage():
    """infer took `--labels '["angry", ...]'` (which manifest takes) and died with
    AttributeError: 'list' object has no attribute 'items'."""
    from cueprobe.cli import labels_json

    for command in ("manifest", "train-reference", "infer", "evaluate", "plot-token-distribution"):
        parse = _flag(command, "--labels").type
        assert parse('["angry", "sad"]') == {"angry": [], "sad": []}
        assert parse('{"sad": ["sadness"]}') == {"sad": ["sadness"]}
    for bad in ('"angry"', '{"sad": "sadness"}', "[1, 2]", "{sad}"):
        with pytest.raises(argparse.ArgumentTypeError):
            labels_json(bad)


def test_nan_and_infinity_pass_no_range():
    """NaN compares false with every bound: LEVEL("nan") was accepted (an alpha of NaN
    makes nothing significant)."""
    from cueprobe.cli import LEVEL
    from cueprobe.cli import SHARE
    from cueprobe.cli import number

    for parse in (LEVEL, SHARE, number(float, low=0, open_=True)):
        for text in ("nan", "inf", "-inf"):
            with pytest.raises(argparse.ArgumentTypeError, match="finite"):
                parse(text)
