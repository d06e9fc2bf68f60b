"""Table contracts checked on every read and write; strict, byte-stable JSON."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from cueprobe import io

ROW = {"utt_id": "u1", "path": "/a.wav", "reason": "missing_audio"}


def test_round_trip_and_atomic_write(tmp_path):
    df = pd.DataFrame([ROW])
    io.write_table(df, tmp_path / "sub/excluded.parquet", "excluded")
    pd.testing.assert_frame_equal(io.read_table(tmp_path / "sub/excluded.parquet", "excluded"), df)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["excluded.parquet"]


def test_an_output_reaches_the_disk_before_its_rename_and_the_rename_after(tmp_path, monkeypatch):
    """Without fsync, a node crash after the job could leave an empty file under the name
    of an output Snakemake records as complete."""
    events = []
    fsync, replace = os.fsync, os.replace

    def logged_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def logged_replace(src, dst):
        events.append(("replace", str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", logged_fsync)
    monkeypatch.setattr(os, "replace", logged_replace)
    out = tmp_path / "sub/excluded.parquet"
    io.write_table(pd.DataFrame([ROW]), out, "excluded")
    kinds = [k for k, _ in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    assert events[0][1].startswith(str(out.parent / ".excluded.parquet."))  # the data
    assert events[2][1] == str(out.parent)  # the folder's entry


def test_contract_errors_name_table_file_and_column(tmp_path):
    with pytest.raises(
        io.TableError, match=r"excluded table \(x.parquet\) lacks column\(s\) \['reason'\]"
    ):
        io.validate_table(
            pd.DataFrame([ROW]).drop(columns="reason"), "excluded", source="x.parquet"
        )
    with pytest.raises(io.TableError, match="column 'duration_s' must be float"):
        manifest = {c: ["x"] for c in io.TABLES["manifest"]}
        io.validate_table(pd.DataFrame(manifest), "manifest")
    with pytest.raises(io.TableError, match=r"2 duplicate utt_id\(s\): 'u1'"):
        io.validate_table(pd.DataFrame([ROW, ROW, ROW]), "excluded")
    with pytest.raises(io.TableError, match="missing utt_id values"):
        io.validate_table(pd.DataFrame([ROW | {"utt_id": None}]), "excluded")
    with pytest.raises(FileNotFoundError, match="manifest table not found"):
        io.read_table(tmp_path / "nope.parquet", "manifest")


def test_json_is_strict_and_sorted(tmp_path):
    io.write_json(
        {"b": float("nan"), "a": [np.float64("nan"), 1.5], "c": np.int64(3)}, tmp_path / "x.json"
    )
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text
    assert json.loads(text) == {"a": [None, 1.5], "b": None, "c": 3}
    assert text.index('"a"') < text.index('"b"')


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask_like_open_does(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        io.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
        io.write_json({"a": 1}, tmp_path / "t.json")
        io.write_bytes(b"x", tmp_path / "t.png")
    finally:
        os.umask(old)
    for name in ("t.parquet", "t.json", "t.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_keyed_tables_refuse_a_repeated_utt_id():
    """Overlapping prediction shards would count utterances twice in UAR and McNemar; the
    gather step relies on this check (a mutant that dropped predictions from it passed)."""
    for kind, row in (("excluded", ROW), ("predictions", None)):
        if row is None:
            row = dict.fromkeys(io.TABLES["predictions"], "x")
        with pytest.raises(io.TableError, match="utt_id"):
            io.validate_table(pd.DataFrame([row, row]), kind)


def _manifest(**change) -> pd.DataFrame:
    row = {c: "x" for c in io.TABLES["manifest"]} | {"split": "test", "duration_s": 1.0}
    rows = [row | {"utt_id": f"u{i}"} for i in range(3)]
    df = pd.DataFrame(rows)
    for col, value in change.items():
        df[col] = df[col].astype(object)
        df.loc[1, col] = value
    return df


@pytest.mark.parametrize(
    ("kind", "table", "message"),
    [
        (
            "manifest",
            _manifest(split=None),
            r"column 'split' has no value in 1 row\(s\) \(utt_id 'u1'\)",
        ),
        ("manifest", _manifest(label=np.nan), r"column 'label' has no value"),
        ("manifest", _manifest(speaker=None), r"column 'speaker' has no value"),
        ("manifest", _manifest(gender=None), r"column 'gender' has no value"),  # gender bins
        (
            "manifest",
            _manifest(split="val"),
            r"column 'split' holds \['val'\] \(utt_id 'u1'\); it takes \['train', 'dev', 'test'\]",
        ),
    ],
)
def test_a_row_without_a_value_it_needs_is_refused_by_name(kind, table, message):
    """A manifest row with no split was left out of inference, training and evaluation
    (n 31 -> 30) with exit code 0: only a missing utt_id was refused."""
    with pytest.raises(io.TableError, match=message):
        io.validate_table(table, kind, source="m.parquet")
    io.validate_table(_manifest(), kind)  # the same table with every value is fine


def test_feature_statuses_tokens_and_predictions_take_their_values_only():
    """A features row with no status (or an unknown one) changed 20 tokens of the corpus
    silently; a prediction's parse_status outside the set would count as neither."""
    features = pd.DataFrame({c: [1.0, 2.0] for c in io.TABLES["features"]})
    features["utt_id"], features["n_frames"] = ["a", "b"], [1, 2]
    features["status"] = ["ok", "weird"]
    with pytest.raises(io.TableError, match=r"'status' holds \['weird'\] \(utt_id 'b'\)"):
        io.validate_table(features, "features")
    features["status"] = ["ok", None]
    with pytest.raises(io.TableError, match=r"'status' has no value in 1 row"):
        io.validate_table(features, "features")
    features["status"] = ["ok", "clipped"]
    io.validate_table(features, "features")
    tokens = pd.DataFrame({c: ["x", "y"] for c in io.TABLES["tokens"]})
    tokens[[c for c in tokens if c.startswith("score_")]] = 0.5
    tokens["flag"] = ["", None]
    with pytest.raises(io.TableError, match=r"tokens table: column 'flag' has no value"):
        io.validate_table(tokens, "tokens")
    predictions = pd.DataFrame({c: ["u1"] for c in io.TABLES["predictions"]})
    predictions[["split", "parse_status", "raw_output"]] = ["test", "exact", None]
    io.validate_table(predictions, "predictions")  # an error answer has no raw output
    predictions["parse_status"] = "guessed"
    with pytest.raises(io.TableError, match=r"'parse_status' holds \['guessed'\]"):
        io.validate_table(predictions, "predictions")


def test_a_json_file_that_is_not_json_is_named(tmp_path):
    """Figure 1's --edges given a wrong file said only "Expecting value: line 2 column 1"."""
    bad = tmp_path / "edges.json"
    bad.write_bytes(b"\xf2\x00 not json")
    with pytest.raises(ValueError, match=r"edges.json is not a JSON file"):
        io.read_json(bad)
    bad.write_text("n_bins: 3\n")
    with pytest.raises(ValueError, match=r"edges.json is not a JSON file: Expecting value"):
        io.read_json(bad)


def test_json_and_text_are_utf8_whatever_the_locale(tmp_path):
    """``read_json`` decoded in the locale's encoding: a UTF-8 file was "not a JSON file"
    where Python runs in ASCII (Latin-1 would have misread it silently)."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "x.json").write_bytes('{"angry": ["wütend"]}'.encode())
    code = (
        "import sys; from cueprobe import io; "
        "assert io.read_json(sys.argv[1]) == {'angry': ['w\\u00fctend']}; "
        "io.write_text('\\u00e9', sys.argv[2])"
    )
    src = Path(io.__file__).parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code, tmp_path / "x.json", tmp_path / "y.txt"],
        capture_output=True, text=True,
        env=os.environ | {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0",
                          "PYTHONPATH": str(src)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "y.txt").read_bytes() == "é".encode()
