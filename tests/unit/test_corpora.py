"""Corpus adapters: exact manifests from small official-layout trees."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cueprobe.corpora import CorpusError
from cueprobe.corpora import build_manifest
from cueprobe.corpora import corpus_labels
from cueprobe.corpora import eval_splits
from cueprobe.corpora.csvsheet import sheet_summary
from cueprobe.corpora.iemocap import emo_evaluation_files
from cueprobe.corpora.iemocap import speaker_of

EMO_EVAL = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral state; ()
C-E3:\tNeutral state; ()
A-E3:\tval 3; act 2; dom  2; ()
A-E4:\tval 2; act 3; dom  3; (mildly aggravated)

[10.0100 - 11.3925]\tSes01F_impro01_M003\texc\t[3.5000, 3.5000, 3.0000]
C-E2:\tExcited; ()
C-F1:\tHappiness; Excited; ()

[14.8872 - 18.0175]\tSes01F_impro01_F001\tfru\t[2.0000, 3.5000, 3.5000]
C-E2:\tFrustration; ()

[19.2900 - 20.7875]\tSes01F_impro01_M004\txxx\t[2.5000, 3.0000, 3.0000]

[21.0000 - 22.0000]\tSes01F_impro01_M005\tang\t[1.5000, 4.0000, 4.0000]
"""


def _iemocap_tree(root: Path, write_wav) -> None:
    evaluation = root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    evaluation.parent.mkdir(parents=True)
    evaluation.write_text(EMO_EVAL)
    wav_dir = root / "Session1/sentences/wav/Ses01F_impro01"
    for utt in ["Ses01F_impro01_F000", "Ses01F_impro01_M003", "Ses01F_impro01_F001"]:
        write_wav(wav_dir / f"{utt}.wav", duration_s=0.5)
    # M004 (xxx) has a wav, M005 (ang) has none
    write_wav(wav_dir / "Ses01F_impro01_M004.wav")
    s5 = root / "Session5/dialog/EmoEvaluation/Ses05M_script01_1.txt"
    s5.parent.mkdir(parents=True)
    s5.write_text("[1.0000 - 2.0000]\tSes05M_script01_1_F002\tsad\t[2.0, 2.0, 2.0]\n")
    write_wav(root / "Session5/sentences/wav/Ses05M_script01_1/Ses05M_script01_1_F002.wav", 0.25)
    for i in (2, 3, 4):  # a session whose dialogues hold no turn (only the file is needed)
        empty = root / f"Session{i}/dialog/EmoEvaluation/Ses0{i}F_impro01.txt"
        empty.parent.mkdir(parents=True)
        empty.write_text("")


def test_iemocap_exact_manifest(tmp_path, write_wav):
    _iemocap_tree(tmp_path, write_wav)
    manifest, excluded = build_manifest("iemocap", tmp_path)
    wav = tmp_path.resolve() / "Session1/sentences/wav/Ses01F_impro01"
    expected = pd.DataFrame(
        {
            "utt_id": ["Ses01F_impro01_F000", "Ses01F_impro01_M003", "Ses05M_script01_1_F002"],
            "path": [
                str(wav / "Ses01F_impro01_F000.wav"),
                str(wav / "Ses01F_impro01_M003.wav"),
                str(
                    tmp_path.resolve()
                    / "Session5/sentences/wav/Ses05M_script01_1/Ses05M_script01_1_F002.wav"
                ),
            ],
            # the LAST field names the speaker: M003 in a dialogue led by F is Ses01M
            "speaker": ["Ses01F", "Ses01M", "Ses05F"],
            "gender": ["F", "M", "F"],
            "session": ["Ses01", "Ses01", "Ses05"],
            "split": ["train", "train", "test"],
            "label": ["neutral", "happy", "sad"],
            "label_raw": ["neu", "exc", "sad"],
            "duration_s": [0.5, 0.5, 0.25],
        }
    )
    pd.testing.assert_frame_equal(manifest, expected, check_dtype=False)
    assert excluded.to_dict("records") == [
        {
            "utt_id": "Ses01F_impro01_F001",
            "path": str(wav / "Ses01F_impro01_F001.wav"),
            "reason": "category_not_in_4way: fru",
        },
        {
            "utt_id": "Ses01F_impro01_M004",
            "path": str(wav / "Ses01F_impro01_M004.wav"),
            "reason": "category_not_in_4way: xxx",
        },
        {
            "utt_id": "Ses01F_impro01_M005",
            "path": str(wav / "Ses01F_impro01_M005.wav"),
            "reason": "missing_audio",
        },
    ]


def test_speaker_of_uses_last_field():
    assert speaker_of("Ses01F_impro01_M003") == ("Ses01M", "M", "Ses01")
    assert speaker_of("Ses03M_script02_2_F010") == ("Ses03F", "F", "Ses03")
    with pytest.raises(CorpusError, match="not an IEMOCAP utterance id: 'foo'"):
        speaker_of("foo")


def test_iemocap_bad_utterance_id_names_file_and_line(tmp_path):
    f = tmp_path / "Session3/dialog/EmoEvaluation/Ses03F_impro01.txt"
    f.parent.mkdir(parents=True)
    f.write_text("% header\n[1.0 - 2.0]\tSes03F_impro01_X004\tneu\t[1,1,1]\n")
    with pytest.raises(
        CorpusError,
        match=r"Ses03F_impro01.txt:2: not an IEMOCAP utterance id: 'Ses03F_impro01_X004'",
    ):
        build_manifest("iemocap", tmp_path)


def test_iemocap_bad_turn_line_names_file_and_line(tmp_path):
    f = tmp_path / "Session2/dialog/EmoEvaluation/Ses02F_impro01.txt"
    f.parent.mkdir(parents=True)
    f.write_text("% header\n\n[1.0 - oops]\tSes02F_impro01_F000\tneu\t[1,1,1]\n")
    with pytest.raises(CorpusError, match=r"Ses02F_impro01.txt:3: cannot parse turn line"):
        build_manifest("iemocap", tmp_path)


def test_iemocap_missing_session_is_an_error(tmp_path, write_wav):
    """A misnamed Session5 would silently leave no test split."""
    _iemocap_tree(tmp_path, write_wav)
    (tmp_path / "Session5").rename(tmp_path / "session5")
    with pytest.raises(CorpusError, match=r"/\{Session5\}/dialog/EmoEvaluation/: IEMOCAP has"):
        build_manifest("iemocap", tmp_path)


def test_a_session_whose_audio_is_all_missing_is_an_error(tmp_path, write_wav):
    """A partial unpack (Session5/sentences/ absent) built a manifest with no test split
    and exit code 0: every Session 5 turn was `missing_audio` in excluded.parquet."""
    _iemocap_tree(tmp_path, write_wav)
    wav = tmp_path / "Session5/sentences/wav/Ses05M_script01_1/Ses05M_script01_1_F002.wav"
    wav.unlink()
    with pytest.raises(CorpusError) as err:
        build_manifest("iemocap", tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: every utterance of the label set lost its audio in 1 session(s): "
        f"Ses05: all 1 (missing_audio 1), e.g. {wav}. Is the corpus fully unpacked?"
    )
    # one file of a session missing is an exclusion, as before (M005 in Ses01)
    _aibo_tree(tmp_path / "aibo", write_wav)
    for mont in (tmp_path / "aibo/wav").glob("Mont_*.wav"):
        mont.unlink()
    with pytest.raises(CorpusError, match=r"in 1 session\(s\): Mont: all 2 \(missing_audio 2\)"):
        build_manifest("aibo", tmp_path / "aibo")


def test_iemocap_skips_appledouble_sidecars(tmp_path, write_wav):
    """A copy made on macOS carries binary `._*.txt` files beside each EmoEvaluation file;
    one with a line starting with "[" stopped the manifest."""
    _iemocap_tree(tmp_path, write_wav)
    before = build_manifest("iemocap", tmp_path)
    sidecar = tmp_path / "Session1/dialog/EmoEvaluation/._Ses01F_impro01.txt"
    sidecar.write_bytes(b"\x00\x05\x16\x07\x00\x02Mac OS X        \n[\x8f\x12\x00\x00")
    after = build_manifest("iemocap", tmp_path)
    pd.testing.assert_frame_equal(before[0], after[0])


def test_iemocap_label_files_are_the_manifest_inputs(tmp_path, write_wav):
    """The files the workflow gives the manifest job as input (so that Snakemake sees an
    edited label) are exactly those the adapter reads: no sidecar, sorted."""
    _iemocap_tree(tmp_path, write_wav)
    (tmp_path / "Session1/dialog/EmoEvaluation/._Ses01F_impro01.txt").write_bytes(b"\x00")
    files = emo_evaluation_files(tmp_path)
    assert files == sorted(tmp_path.glob("Session[1-5]/dialog/EmoEvaluation/[!.]*.txt"))
    assert files and all(not f.name.startswith(".") for f in files)
    assert emo_evaluation_files(tmp_path / "nowhere") == []


def test_iemocap_empty_root(tmp_path):
    with pytest.raises(CorpusError, match="no EmoEvaluation files"):
        build_manifest("iemocap", tmp_path)


def test_unreadable_wav_is_excluded_with_reason(tmp_path, write_wav):
    _iemocap_tree(tmp_path, write_wav)
    bad = tmp_path / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    bad.write_bytes(b"RIFF\x00\x00not a wav at all")
    manifest, excluded = build_manifest("iemocap", tmp_path)
    assert "Ses01F_impro01_F000" not in set(manifest["utt_id"])
    reason = excluded.set_index("utt_id").loc["Ses01F_impro01_F000", "reason"]
    assert reason.startswith("unreadable_audio:")


AIBO = """Ohm_01_001_00 N 0.900000
Ohm_01_001_01 A 1.000000
Ohm_02_003_00 E 0.650000
Ohm_03_001_00 P 0.700000
Ohm_04_002_00 R 0.800000
Mont_01_001_00 N 1.000000
Mont_02_004_02 A 0.600000
"""


def _aibo_tree(root: Path, write_wav) -> None:
    labels = root / "labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text(AIBO)
    for line in AIBO.splitlines():
        write_wav(root / "wav" / f"{line.split()[0]}.wav", 0.5)


def test_aibo_splits_and_speakers(tmp_path, write_wav):
    _aibo_tree(tmp_path, write_wav)
    manifest, excluded = build_manifest("aibo", tmp_path)
    assert excluded.empty
    got = manifest.set_index("utt_id")[["speaker", "split", "label"]].to_dict("index")
    assert got == {
        "Mont_01_001_00": {"speaker": "Mont_01", "split": "test", "label": "neutral"},
        "Mont_02_004_02": {"speaker": "Mont_02", "split": "test", "label": "angry"},
        "Ohm_01_001_00": {"speaker": "Ohm_01", "split": "train", "label": "neutral"},
        "Ohm_01_001_01": {"speaker": "Ohm_01", "split": "train", "label": "angry"},
        "Ohm_02_003_00": {"speaker": "Ohm_02", "split": "train", "label": "emphatic"},
        # dev = the last two Ohm speakers in sorted order
        "Ohm_03_001_00": {"speaker": "Ohm_03", "split": "dev", "label": "positive"},
        "Ohm_04_002_00": {"speaker": "Ohm_04", "split": "dev", "label": "rest"},
    }
    # Ohm_01 and Mont_01 are different children
    assert manifest["speaker"].nunique() == 6


def test_aibo_configured_dev_speakers(tmp_path, write_wav):
    _aibo_tree(tmp_path, write_wav)
    manifest, _ = build_manifest("aibo", tmp_path, dev_speakers=["Ohm_01"])
    dev = set(manifest.loc[manifest["split"] == "dev", "speaker"])
    assert dev == {"Ohm_01"}
    with pytest.raises(CorpusError, match=r"dev_speakers \['Mont_01'\] are not Ohm speakers"):
        build_manifest("aibo", tmp_path, dev_speakers=["Mont_01"])
    with pytest.raises(CorpusError, match="name every Ohm speaker"):
        build_manifest("aibo", tmp_path, dev_speakers=[f"Ohm_0{i}" for i in range(1, 5)])
    for n in (0, 4, 9):  # the Ohm school has 4 speakers here: dev must leave train one
        with pytest.raises(CorpusError, match=rf"n_dev_speakers={n}: .* 4 Ohm speakers"):
            build_manifest("aibo", tmp_path, n_dev_speakers=n)
    manifest, _ = build_manifest("aibo", tmp_path, n_dev_speakers=3)
    assert set(manifest.loc[manifest["split"] == "train", "speaker"]) == {"Ohm_01"}


def test_aibo_errors(tmp_path, write_wav):
    with pytest.raises(CorpusError, match="FAU-Aibo label file not found"):
        build_manifest("aibo", tmp_path)
    _aibo_tree(tmp_path, write_wav)
    label_file = tmp_path / "labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
    label_file.write_text(AIBO + "garbage line\n")
    with pytest.raises(CorpusError, match=r"chunk_labels_5cl_corpus.txt:8: cannot parse"):
        build_manifest("aibo", tmp_path)
    label_file.write_text("Xyz_01_001_00 N 1.0\n")
    with pytest.raises(CorpusError, match="unknown school 'Xyz'"):
        build_manifest("aibo", tmp_path)


def test_aibo_unknown_class_is_excluded(tmp_path, write_wav):
    _aibo_tree(tmp_path, write_wav)
    label_file = tmp_path / "labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
    label_file.write_text(AIBO + "Ohm_05_001_00 Q 1.0\n")
    write_wav(tmp_path / "wav/Ohm_05_001_00.wav")
    _, excluded = build_manifest("aibo", tmp_path)
    assert excluded.to_dict("records")[0]["reason"] == "class_not_in_5cl: Q"


def test_csv_adapter(tmp_path, write_wav):
    write_wav(tmp_path / "audio/a.wav")
    write_wav(tmp_path / "audio/b.wav")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "path,label,speaker,gender,split\n"
        "audio/a.wav,angry,s1,F,train\n"
        "audio/b.wav,calm,s2,,test\n"
        "audio/c.wav,Sad,s2,M,test\n"
        "audio/d.wav,sad,s3,M,test\n"
    )
    write_wav(tmp_path / "audio/d.wav")
    manifest, excluded = build_manifest("csv", sheet, labels={"angry": [], "sad": []})
    assert manifest.iloc[1:]["utt_id"].tolist() == ["audio/d"]
    assert manifest.iloc[:1].to_dict("records") == [
        {
            "utt_id": "audio/a",
            "path": str((tmp_path / "audio/a.wav").resolve()),
            "speaker": "s1",
            "gender": "F",
            "session": "s1",
            "split": "train",
            "label": "angry",
            "label_raw": "angry",
            "duration_s": 0.5,
        }
    ]
    assert dict(zip(excluded["utt_id"], excluded["reason"], strict=True)) == {
        "audio/b": "label_not_in_set: calm (line 3)",
        "audio/c": "missing_audio (sheet.csv:4)",
    }


def test_csv_labels_match_the_classes_in_any_case(tmp_path, write_wav):
    write_wav(tmp_path / "a.wav")
    write_wav(tmp_path / "b.wav")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("path,label,speaker\na.wav,Angry,s1\nb.wav, SAD ,s2\n")
    manifest, excluded = build_manifest("csv", sheet, labels={"angry": [], "sad": []})
    assert manifest["label"].tolist() == ["angry", "sad"]
    assert manifest["label_raw"].tolist() == ["Angry", "SAD"]
    assert excluded.empty


@pytest.mark.parametrize(
    ("column", "values", "meant"),
    [("splits", "train test", "split"), ("Partition", "Train Devel", "split"),
     ("set", "training evaluation", "split"), ("sex", "f m unknown", "gender"),
     ("speaker_gender", "Male Female NA", "gender")],
)  # fmt: skip
def test_a_column_of_splits_or_genders_under_another_name_is_not_ignored(
    tmp_path, column, values, meant
):
    """An unread `splits` column made every row `test` (a zero-shot run then scored the
    training speakers too), an unread `sex` column every gender `unknown`, silently."""
    sheet = tmp_path / "sheet.csv"
    rows = "".join(f"{i}.wav,sad,s{i},{v}\n" for i, v in enumerate(values.split()))
    sheet.write_text(f"path,label,speaker,{column}\n{rows}x.wav,sad,sx,\n")
    listed = ", ".join(sorted(v.lower() for v in values.split()))
    with pytest.raises(
        CorpusError, match=rf"column '{column}' holds {meant} values \({listed}\) but is "
        rf"not read .*; rename it '{meant}'"
    ):  # fmt: skip
        build_manifest("csv", sheet, labels={"sad": []})


@pytest.mark.parametrize(
    ("columns", "row"),
    [("fold,sender,gender_id", ["1,Bob,2", "2,Ann,1"]),  # CV folds, free text, codes
     ("split,gender,set,sex", ["dev,F,train,f", "dev,M,test,m"]),  # beside the real ones
     ("room", ["M", "M"])],  # one kind: no gender
)  # fmt: skip
def test_other_columns_are_not_taken_for_split_or_gender(tmp_path, columns, row):
    """Told by the values, not the name: a `fold` of 1..5 or a `sender` is no split."""
    sheet = tmp_path / "sheet.csv"
    rows = "".join(f"{i}.wav,sad,s{i},{r}\n" for i, r in enumerate(row))
    sheet.write_text(f"path,label,speaker,{columns}\n{rows}")
    assert sheet_summary(sheet).splits == ({"dev"} if "split," in columns else {"test"})


def test_csv_bad_split_value_is_named_before_any_speaker_leak(tmp_path):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("path,label,speaker,split\na.wav,sad,s1,train\nb.wav,sad,s1,valid\n")
    with pytest.raises(CorpusError, match=r"sheet.csv:3: split 'valid' is not one of"):
        build_manifest("csv", sheet, labels={"sad": []})


def test_csv_gender_spellings_become_f_and_m(tmp_path, write_wav):
    """Gender-specific bins are fitted for F and M: other spellings must not fall outside."""
    sheet = tmp_path / "sheet.csv"
    rows = ["Female", "male", " w ", "", "child", "M"]
    for i in range(len(rows)):
        write_wav(tmp_path / f"{i}.wav")
    sheet.write_text(
        "path,label,speaker,gender\n"
        + "".join(f"{i}.wav,angry,s{i},{g}\n" for i, g in enumerate(rows))
    )
    manifest, _ = build_manifest("csv", sheet, labels={"angry": []})
    assert manifest["gender"].tolist() == ["F", "M", "F", "unknown", "child", "M"]


def test_csv_paths_written_on_windows_or_in_another_unicode_form_are_found(tmp_path, write_wav):
    """`audio\\a.wav` (a sheet written on Windows) and a name typed in NFC for a file
    stored in NFD (an archive made on macOS) were `missing_audio`."""
    import unicodedata

    write_wav(tmp_path / "audio/a.wav", 0.5)
    nfd = unicodedata.normalize("NFD", "émotion.wav")
    write_wav(tmp_path / "audio" / nfd, 0.5)
    sheet = tmp_path / "sheet.csv"
    nfc = unicodedata.normalize("NFC", "audio/émotion.wav")
    assert nfc != unicodedata.normalize("NFD", nfc)
    sheet.write_text(f"path,label,speaker\r\naudio\\a.wav,sad,s1\r\n{nfc},sad,s2\r\n")
    manifest, excluded = build_manifest("csv", sheet, labels=["sad"])
    assert excluded.empty, excluded.to_dict("records")
    assert manifest["path"].tolist() == [
        str(tmp_path / "audio/a.wav"),
        str(tmp_path / "audio" / nfd),
    ]
    assert manifest["utt_id"].tolist() == ["audio/a", nfc.removesuffix(".wav")]


def test_a_configured_class_without_rows_is_an_error_naming_the_sheets_labels(tmp_path, write_wav):
    """`labels: {anger, joy, neutral, sadness}` for a sheet saying Angry/happy/sad kept
    the neutral rows alone; the run died later in train-reference ("the training split
    has 1 class(es)"), or scored one class with zero-shot models only."""
    rows = ["path,label,speaker"]
    for i, label in enumerate(["Angry", "happy", "NEUTRAL", "sad", "Angry", "sad"]):
        write_wav(tmp_path / f"a{i}.wav", 0.5)
        rows.append(f"a{i}.wav,{label},s{i}")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("\n".join(rows) + "\n")
    labels = {"anger": [], "joy": [], "neutral": [], "sadness": []}
    with pytest.raises(CorpusError) as err:
        build_manifest("csv", sheet, labels=labels)
    assert str(err.value) == (
        f"{sheet}: no kept utterance has label(s) ['anger', 'joy', 'sadness'] of the configured "
        "set ['anger', 'joy', 'neutral', 'sadness'] (the corpus' `labels:`); labels left out "
        "as not in the set: 'Angry' (2), 'sad' (2), 'happy' (1). Name the classes as the "
        "corpus does, or leave the absent ones out."
    )
    manifest, _ = build_manifest("csv", sheet, labels=["angry", "happy", "neutral", "sad"])
    assert len(manifest) == 6


def test_a_subset_of_an_adapters_classes_leaves_the_others_out_with_their_reason(
    tmp_path, write_wav
):
    """3-way IEMOCAP (a subset of the adapter's 4 classes) failed the manifest job with
    "labels ['happy'] of the iemocap adapter are not in the configured set"; a csv sheet
    leaves such rows out with their reason, and so do the adapters now."""
    _iemocap_tree(tmp_path, write_wav)
    full, _ = build_manifest("iemocap", tmp_path)
    keep = sorted(set(full["label"]))[1:]
    manifest, excluded = build_manifest("iemocap", tmp_path, labels={k: [] for k in keep})
    assert set(manifest["label"]) == set(keep) and len(manifest) < len(full)
    gone = full[~full["label"].isin(keep)]
    reasons = excluded.set_index("utt_id")["reason"]
    for utt_id, label in zip(gone["utt_id"], gone["label"], strict=True):
        assert reasons[utt_id] == f"label_not_in_set: {label}"
    assert excluded["utt_id"].is_monotonic_increasing


def test_an_adapters_classes_are_matched_in_any_case_as_a_sheets_are(tmp_path, write_wav):
    """README: "Classes are matched to `labels:` by name (any case)". `Angry` on the
    iemocap adapter left every utterance out as label_not_in_set (a csv sheet matched
    it); the manifest now carries the configured spelling, which prompts and tables use."""
    _iemocap_tree(tmp_path, write_wav)
    full, _ = build_manifest("iemocap", tmp_path)
    labels = {name.capitalize(): [] for name in sorted(set(full["label"]))}
    manifest, excluded = build_manifest("iemocap", tmp_path, labels=labels)
    assert len(manifest) == len(full)
    assert sorted(set(manifest["label"])) == sorted(labels)
    assert not excluded["reason"].str.startswith("label_not_in_set").any()


def test_a_class_lost_to_missing_audio_is_not_blamed_on_its_name(tmp_path, write_wav):
    """The only happy row's file is missing: the error said only that no label was left
    out as not in the set, and told the user to rename the classes."""
    for name in ("a", "s"):
        write_wav(tmp_path / f"{name}.wav", 0.5)
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("path,label,speaker\na.wav,angry,s1\nh.wav,happy,s2\ns.wav,sad,s3\n")
    with pytest.raises(CorpusError, match=r"Left out for other reasons: missing_audio 1 "):
        build_manifest("csv", sheet, labels={"angry": [], "happy": [], "sad": []})


def test_a_sheet_of_missing_files_names_where_the_first_was_looked_for(tmp_path, write_wav):
    """Paths written from the shell's folder, not the sheet's: the error said only
    "missing_audio (s.csv:2)", and excluded.parquet, which holds the resolved paths, is
    not written when nothing is kept."""
    write_wav(tmp_path / "corpus" / "audio" / "a.wav")
    sheet = tmp_path / "corpus" / "s.csv"
    sheet.write_text("path,label,speaker\ncorpus/audio/a.wav,sad,s1\n")
    looked = tmp_path / "corpus" / "corpus" / "audio" / "a.wav"
    with pytest.raises(CorpusError) as err:
        build_manifest("csv", sheet, labels={"sad": []})
    assert str(err.value).endswith(
        f"the first missing file: {looked} (a sheet's relative paths are read from its "
        f"folder, {sheet.parent}))."
    )


def test_csv_errors(tmp_path, write_wav):
    with pytest.raises(CorpusError, match="corpus sheet not found"):
        build_manifest("csv", tmp_path / "nope.csv")
    sheet = tmp_path / "s.csv"
    sheet.write_text("path,label\nx.wav,sad\n")
    with pytest.raises(CorpusError, match=r"missing column\(s\) \['speaker'\]"):
        build_manifest("csv", sheet)
    sheet.write_text("path,label,speaker\nx.wav,sad,\n")
    # the column is named (it said "empty path/label/speaker on line(s) 2")
    with pytest.raises(
        CorpusError,
        match=r"s.csv: empty cell\(s\): speaker on line 2; every row needs its path, label, "
        r"speaker: fill them in or delete the rows",
    ):
        build_manifest("csv", sheet)
    sheet.write_text("path,label,speaker\n,sad,s\nx.wav,,\n")
    with pytest.raises(CorpusError, match=r"empty cell\(s\): path on line 2, label/speaker on"):
        build_manifest("csv", sheet)
    sheet.write_text("path,label,speaker,split\nx.wav,sad,s,val\n")
    with pytest.raises(CorpusError, match="split 'val' is not one of"):
        build_manifest("csv", sheet)
    write_wav(tmp_path / "x.wav")
    sheet.write_text("path,label,speaker,utt_id\nx.wav,sad,s,u1\nx.wav,sad,s,u1\n")
    with pytest.raises(CorpusError, match="1 duplicate utterance id"):
        build_manifest("csv", sheet)


def test_csv_columns_are_named_in_any_case(tmp_path, write_wav):
    """`Split` was an unknown column, ignored: train and dev rows became test."""
    for name in ("a", "b", "c"):
        write_wav(tmp_path / f"{name}.wav")
    sheet = tmp_path / "s.csv"
    sheet.write_text(
        "Path,LABEL,Speaker,Gender,Split,Transcript\n"
        "a.wav,sad,s1,female,Train,hello\nb.wav,sad,s2,m,dev,x\nc.wav,sad,s3,,TEST,y\n"
    )
    manifest, _ = build_manifest("csv", sheet, labels={"sad": []})
    assert manifest["split"].tolist() == ["train", "dev", "test"]
    assert manifest["gender"].tolist() == ["F", "M", "unknown"]
    sheet.write_text("path,label,speaker,split,Split\na.wav,sad,s1,train,test\n")
    with pytest.raises(CorpusError, match=r"column\(s\) \['split'\] appear more than once"):
        build_manifest("csv", sheet, labels={"sad": []})


def test_csv_sheet_that_is_not_utf8_or_a_folder_is_named(tmp_path):
    sheet = tmp_path / "s.csv"
    sheet.write_bytes("path,label,speaker,gender\na.wav,sad,s1,männlich\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"s.csv: not UTF-8 text .*save the sheet as UTF-8"):
        build_manifest("csv", sheet, labels={"sad": []})
    with pytest.raises(CorpusError, match="is a folder: the csv adapter reads one sheet"):
        build_manifest("csv", tmp_path, labels={"sad": []})


def test_a_corpus_that_keeps_no_utterance_is_an_error_naming_why(tmp_path, write_wav):
    """It was written, and the run failed jobs later: `no utterance to fit token edges on`."""
    write_wav(tmp_path / "a.wav")
    sheet = tmp_path / "s.csv"
    sheet.write_text("path,label,speaker\na.wav,ang,s1\nb.wav,sa,s2\nc.wav,ang,s3\n")
    with pytest.raises(
        CorpusError,
        match=r"no utterance of .*s.csv is kept \(3 left out: label_not_in_set 3; "
        r"the first: label_not_in_set: ang \(line 2\)\)",
    ):
        build_manifest("csv", sheet, labels={"angry": [], "sad": []})


def test_csv_cells_are_stripped_and_ragged_rows_are_errors(tmp_path, write_wav):
    """A stray space must not make two speakers; an unquoted comma must not shift columns."""
    for name in ("a", "b", "c"):
        write_wav(tmp_path / f"{name}.wav")
    sheet = tmp_path / "s.csv"
    sheet.write_text("path,label,speaker,\na.wav, angry ,s1,\nb.wav,sad,s1 ,\n\nc.wav,sad,s1\n")
    manifest, excluded = build_manifest("csv", sheet, labels={"angry": [], "sad": []})
    assert excluded.empty  # trailing commas and a blank line are harmless
    assert manifest["speaker"].tolist() == ["s1"] * 3
    assert manifest["label"].tolist() == ["angry", "sad", "sad"]
    sheet.write_text("path,label,speaker\na.wav,angry,s1,F\n")
    with pytest.raises(CorpusError, match=r"s.csv:2: 4 fields for the header's 3"):
        build_manifest("csv", sheet, labels={"angry": []})
    sheet.write_text("path,label,speaker,label\na.wav,angry,s1,sad\n")
    with pytest.raises(CorpusError, match=r"column\(s\) \['label'\] appear more than once"):
        build_manifest("csv", sheet, labels={"angry": []})


def test_csv_speaker_in_two_splits_and_blank_split_are_errors(tmp_path, write_wav):
    """Held-out scores must not include a training speaker (and a speaker is one cluster)."""
    for name in ("a", "b", "c"):
        write_wav(tmp_path / f"{name}.wav")
    sheet = tmp_path / "s.csv"
    sheet.write_text("path,label,speaker,split\na.wav,sad,s1,train\nb.wav,sad,s2,test\n"
                     "c.wav,sad,s1,test\n")  # fmt: skip
    with pytest.raises(CorpusError, match=r"1 speaker\(s\) in more than one split, e.g. 's1' "
                       r"\(train on line 2, test on line 4\)"):  # fmt: skip
        build_manifest("csv", sheet, labels={"sad": []})
    sheet.write_text("path,label,speaker,split\na.wav,sad,s1,train\nb.wav,sad,s2,\n")
    with pytest.raises(CorpusError, match=r"empty cell\(s\): split on line 3; every row needs "):
        build_manifest("csv", sheet, labels={"sad": []})


def test_unknown_adapter(tmp_path):
    with pytest.raises(CorpusError, match="unknown adapter 'tess'"):
        build_manifest("tess", tmp_path)


def test_labels_and_eval_splits_defaults():
    iem = {"adapter": "iemocap", "labels": None, "eval_splits": None}
    assert list(corpus_labels(iem)) == ["angry", "happy", "neutral", "sad"]
    assert eval_splits(iem, zero_shot=True) == ["all"]
    assert eval_splits(iem, zero_shot=False) == ["test"]
    aibo = {"adapter": "demo-aibo", "labels": None, "eval_splits": None}
    assert list(corpus_labels(aibo)) == ["angry", "emphatic", "neutral", "positive", "rest"]
    assert eval_splits(aibo, zero_shot=True) == ["dev", "test"]
    with pytest.raises(CorpusError, match="a csv corpus needs `labels:`"):
        corpus_labels({"adapter": "csv", "labels": None})


def test_utt_id_with_a_control_character_is_refused(tmp_path, write_wav):
    """A tab or line break in an utt_id split the answer journal's keys much later."""
    from cueprobe.corpora.common import split_kept

    write_wav(tmp_path / "a.wav")
    sheet = tmp_path / "s.csv"
    for bad, shown in (("u\t1", r"'u\\t1'.*'\\t'"), ("u\n1", r"'u\\n1'.*'\\n'")):
        sheet.write_text(f'path,label,speaker,utt_id\na.wav,sad,s1,"{bad}"\n')
        with pytest.raises(CorpusError, match=rf"^s.csv:\d: utt_id {shown}; a tab or line break"):
            build_manifest("csv", sheet, labels={"sad": []})
    # an adapter that says where a row comes from is named
    row = {"utt_id": "u\x1f1", "path": str(tmp_path / "a.wav"), "where": "s.csv:7"}
    with pytest.raises(CorpusError, match=r"^s.csv:7: utt_id 'u\\x1f1' holds control"):
        split_kept([row])


def _candidate(tmp_path, utt_id, name, where=None):
    row = {"utt_id": utt_id, "path": str(tmp_path / name), "speaker": "s1", "gender": "F"}
    row |= {"session": "s1", "split": "test", "label": "sad", "label_raw": "sad"}
    return row | ({"where": where} if where else {})


def test_duplicate_ids_name_their_rows_and_say_why(tmp_path, write_wav):
    """A user listed one file twice: the message named neither sheet nor lines, nor that
    utt_id defaults to the audio path."""
    from cueprobe.corpora.common import split_kept

    write_wav(tmp_path / "wav/x.wav")
    sheet = tmp_path / "s.csv"
    sheet.write_text("path,label,speaker\nwav/x.wav,sad,s1\nwav/x.wav,sad,s1\n")
    audio = str((tmp_path / "wav/x.wav").resolve())
    with pytest.raises(CorpusError) as err:
        build_manifest("csv", sheet, labels={"sad": []})
    assert str(err.value) == (
        f"1 duplicate utterance id(s): 'wav/x' (s.csv:2, s.csv:3, all for audio {audio}). One "
        "audio file "
        "is listed more than once (an id taken from the audio path, as a csv sheet without a "
        "utt_id column does, repeats with it): list each file once, or give each row its own "
        "utt_id."
    )
    rows = [_candidate(tmp_path, "u1", n, f"s.csv:{i}") for i, n in ((2, "a.wav"), (5, "b.wav"))]
    with pytest.raises(CorpusError, match=r"^1 duplicate utterance id\(s\): 'u1' \(s.csv:2, "
                       r"s.csv:5\)\. Give each utterance its own utt_id\.$"):  # fmt: skip
        split_kept(rows)
    rows = [_candidate(tmp_path, "u1", "a.wav"), _candidate(tmp_path, "u1", "b.wav")]
    with pytest.raises(CorpusError, match=r"'u1' \(2 rows, audio .*a.wav, .*b.wav\)"):
        split_kept(rows)


def test_one_file_under_two_spellings_or_ids_is_an_error(tmp_path, write_wav):
    """``audio/x.wav`` and ``audio/../audio/x.wav`` (or one path under two utt_ids) made
    two manifest rows of one clip, labelled angry and sad, under two speakers."""
    write_wav(tmp_path / "audio/x.wav")
    write_wav(tmp_path / "audio/y.wav", freq=200.0)
    sheet = tmp_path / "s.csv"
    sheet.write_text(
        "path,label,speaker\naudio/x.wav,angry,s1\naudio/../audio/x.wav,sad,s2\n"
        "audio/y.wav,sad,s3\n"
    )
    audio = (tmp_path / "audio/x.wav").resolve()
    with pytest.raises(CorpusError) as err:
        build_manifest("csv", sheet, labels={"angry": [], "sad": []})
    assert str(err.value) == (
        "1 audio file(s) listed more than once (under different ids, spellings, or links to "
        f"one file, as a content-addressed store makes of identical recordings): {audio} "
        "(s.csv:2, s.csv:3: labels angry, sad). List each file once."
    )
    sheet.write_text("path,label,speaker,utt_id\naudio/x.wav,sad,s1,a\naudio/x.wav,sad,s1,b\n")
    with pytest.raises(CorpusError, match=r"listed more than once \(under different ids"):
        build_manifest("csv", sheet, labels={"sad": []})
    # two links to one object of a content-addressed store (git-annex, DataLad: two
    # byte-identical recordings) are one sample: the message says so
    (tmp_path / "audio/l1.wav").symlink_to(audio)
    (tmp_path / "audio/l2.wav").symlink_to(audio)
    sheet.write_text("path,label,speaker\naudio/l1.wav,sad,s1\naudio/l2.wav,sad,s1\n")
    with pytest.raises(CorpusError, match="links to one file, as a content-addressed store"):
        build_manifest("csv", sheet, labels={"sad": []})


def test_audio_reasons_name_where_the_row_comes_from(tmp_path, write_wav):
    """label_not_in_set named its line and missing_audio did not; exclusions still count
    by kind."""
    from cueprobe.corpora import exclusion_counts
    from cueprobe.corpora.common import split_kept

    write_wav(tmp_path / "a.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    rows = [
        _candidate(tmp_path, "a", "a.wav", "s.csv:2"),
        _candidate(tmp_path, "b", "b.wav", "s.csv:3"),
        _candidate(tmp_path, "c", "c.wav"),
        _candidate(tmp_path, "d", "empty.wav", "s.csv:9"),
    ]
    manifest, excluded = split_kept(rows)
    assert manifest["utt_id"].tolist() == ["a"]
    reasons = dict(zip(excluded["utt_id"], excluded["reason"], strict=True))
    assert reasons["b"] == "missing_audio (s.csv:3)"
    assert reasons["c"] == "missing_audio"
    assert reasons["d"].startswith("unreadable_audio: ") and reasons["d"].endswith(" (s.csv:9)")
    assert exclusion_counts(excluded).to_dict() == {"missing_audio": 2, "unreadable_audio": 1}


def test_a_sheet_without_a_split_column_is_all_test(tmp_path, write_wav):
    """The documented default (a sheet of test rows, scored zero-shot); a mutant that made
    it train passed."""
    write_wav(tmp_path / "a.wav")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("path,label,speaker\na.wav,angry,s1\n")
    manifest, _ = build_manifest("csv", sheet, labels={"angry": []})
    assert manifest["split"].tolist() == ["test"]


@pytest.mark.parametrize("layout", ["iemocap", "aibo"])
def test_manifest_paths_are_the_root_as_written(tmp_path, monkeypatch, layout):
    """Paths were resolved: the demo's manifest (root `resources/demo/...`) held the clone's
    absolute folder, so two clones' results differed, a moved project pointed at the old
    place, and a corpus behind links (git-annex, DataLad) listed its object store."""
    import shutil

    from cueprobe.corpora.demo import make_demo_aibo
    from cueprobe.corpora.demo import make_demo_iemocap

    make = make_demo_iemocap if layout == "iemocap" else make_demo_aibo
    make(tmp_path / "a/corpus", n_per_speaker=5, seed=3)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    manifests = []
    for where in ("a", "b"):
        monkeypatch.chdir(tmp_path / where)
        manifests.append(build_manifest(layout, Path("corpus")))
    pd.testing.assert_frame_equal(manifests[0][0], manifests[1][0])
    assert all(p.startswith("corpus/") for p in manifests[0][0]["path"])
    (tmp_path / "link").symlink_to(tmp_path / "a/corpus")
    linked, _ = build_manifest(layout, tmp_path / "link")
    assert all(p.startswith(f"{tmp_path / 'link'}/") for p in linked["path"])


# --- what no test pinned (a mutation review) ------------------------------------------------


def _iemocap(root: Path, write_wav, sessions=range(1, 6)) -> None:
    for s in sessions:
        d = f"Ses0{s}F_impro01"
        f = root / f"Session{s}/dialog/EmoEvaluation/{d}.txt"
        f.parent.mkdir(parents=True)
        f.write_text(f"[1.0 - 2.0]\t{d}_M000\tneu\t[2.5, 2.5, 2.5]\n")
        write_wav(root / f"Session{s}/sentences/wav/{d}/{d}_M000.wav")


def _aibo(root: Path, lines: list[str], write_wav) -> None:
    labels = root / "labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text("".join(line + "\n" for line in lines))
    for line in lines:
        write_wav(root / "wav" / f"{line.split()[0]}.wav")


def test_iemocap_session_5_alone_is_test_and_every_session_is_needed(tmp_path, write_wav):
    """Session 4 as test too, or a tree without Session 1 read as Sessions 2-5, passed."""
    _iemocap(tmp_path / "full", write_wav)
    m, _ = build_manifest("iemocap", tmp_path / "full")
    assert dict(zip(m["session"], m["split"], strict=True)) == {
        "Ses01": "train", "Ses02": "train", "Ses03": "train", "Ses04": "train", "Ses05": "test",
    }  # fmt: skip
    assert m["speaker"].tolist() == [f"Ses0{s}M" for s in range(1, 6)]  # the turn's speaker (M)
    for missing in range(1, 6):
        root = tmp_path / f"no{missing}"
        _iemocap(root, write_wav, sessions=[s for s in range(1, 6) if s != missing])
        with pytest.raises(CorpusError, match=f"Session{missing}"):
            build_manifest("iemocap", root)


def test_aibo_defaults_and_an_empty_dev_speakers_list(tmp_path, write_wav):
    """`dev_speakers: []` (the IS2009 split: no dev) moved two Ohm children to dev, and
    the real adapter's default classes were never checked (only demo-aibo's)."""
    ohm = [f"Ohm_{c:02d}_001_00 {'NAEPR'[c % 5]} 1.0" for c in range(1, 27)]
    _aibo(tmp_path, [*ohm, "Mont_01_001_00 N 1.0"], write_wav)
    m, _ = build_manifest("aibo", tmp_path, dev_speakers=[])
    assert m.groupby("split")["speaker"].nunique().to_dict() == {"test": 1, "train": 26}
    assert set(corpus_labels({"adapter": "aibo", "labels": None})) == {
        "angry", "emphatic", "neutral", "positive", "rest",
    }  # fmt: skip


def test_an_aibo_label_subset_excludes_the_other_classes_with_their_reason(tmp_path, write_wav):
    lines = ["Ohm_01_001_00 N 1.0", "Ohm_02_001_00 A 1.0", "Ohm_03_001_00 R 1.0",
             "Ohm_04_001_00 P 1.0", "Mont_01_001_00 N 1.0", "Mont_02_001_00 R 1.0"]  # fmt: skip
    _aibo(tmp_path, lines, write_wav)
    labels = {"angry": [], "neutral": [], "positive": []}
    m, x = build_manifest("aibo", tmp_path, labels=labels, n_dev_speakers=1)
    assert set(m["label"]) == {"angry", "neutral", "positive"}
    assert sorted(x["utt_id"]) == ["Mont_02_001_00", "Ohm_03_001_00"]
    assert all(r.startswith("label_not_in_set: rest") for r in x["reason"])


def test_csv_sheets_from_spreadsheets_and_configs_in_capitals(tmp_path, write_wav):
    """A sheet saved as Excel's "CSV UTF-8" (a byte-order mark), configured classes in
    capitals, a speaker in dev and test, an empty file, a 48 kHz clip and an unsorted
    sheet: each passed some mutant of the reader."""
    for name in "abcd":
        write_wav(tmp_path / f"{name}.wav")
    sheet = tmp_path / "s.csv"
    sheet.write_bytes("path,label,speaker\na.wav,sad,s1\n".encode("utf-8-sig"))
    assert build_manifest("csv", sheet, labels=["sad"])[0]["utt_id"].tolist() == ["a"]
    sheet.write_text("path,label,speaker\na.wav,Angry,s1\nb.wav,sad,s2\n")
    m, _ = build_manifest("csv", sheet, labels={"Angry": [], "Sad": []})
    assert m["label"].tolist() == ["Angry", "Sad"]
    sheet.write_text("path,label,speaker,split\na.wav,sad,s1,train\nb.wav,sad,s2,dev\n"
                     "c.wav,sad,s2,test\n")  # fmt: skip
    with pytest.raises(CorpusError, match="in more than one split"):
        build_manifest("csv", sheet, labels=["sad"])
    import soundfile as sf

    sf.write(tmp_path / "empty.wav", [], 16000, subtype="PCM_16")
    write_wav(tmp_path / "hi.wav", duration_s=0.503, sr=48000)
    sheet.write_text("path,label,speaker\nc.wav,sad,s1\nz.wav,sad,s1\nempty.wav,sad,s2\n"
                     "hi.wav,sad,s2\nb.wav,sad,s2\n")  # fmt: skip
    m, x = build_manifest("csv", sheet, labels=["sad"])
    assert m["utt_id"].tolist() == ["b", "c", "hi"]  # sorted by utt_id
    assert m.set_index("utt_id").loc["hi", "duration_s"] == pytest.approx(0.503, abs=1e-4)
    assert list(zip(x["utt_id"], x["reason"], strict=True)) == [
        ("empty", "empty_audio (s.csv:4)"), ("z", "missing_audio (s.csv:3)"),
    ]  # fmt: skip


# --- behaviours earlier reviews left untested (surviving mutants) ---------------------------

#: the 26 Ohm children of FAU-Aibo (IS2009: Ohm = train): two-digit numbers up to 32, with
#: gaps; public code on the corpus uses Ohm_31 and Ohm_32 as autrainer's dev speakers
OHM_CHILDREN = [*range(1, 9), 11, 12, 13, *range(18, 33)]


def test_aibo_children_are_of_unknown_gender_never_f_or_m(tmp_path, write_wav):
    """FAU-Aibo's label file names no gender: every child is `unknown` (the config refuses
    gender-specific edges on it), never a default F or M that would get its own edges."""
    _aibo_tree(tmp_path, write_wav)
    manifest, _ = build_manifest("aibo", tmp_path)
    assert manifest["gender"].tolist() == ["unknown"] * len(AIBO.splitlines())


def test_aibo_malformed_label_lines_name_file_and_line(tmp_path, write_wav):
    """A line with a fourth field (a second label, a comment) is an error, not read from its
    first three (a mutant dropping the regex's `$` passed); blank and `#` lines are skipped
    but counted; an unknown class is excluded by name."""
    _aibo_tree(tmp_path, write_wav)
    label_file = tmp_path / "labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
    head = "# FAU-Aibo\n\n" + AIBO
    for bad in ("Ohm_01_009_00 N 1.0 A", "Ohm_01_009_00 N", "Ohm_01_009_00 N 1,0"):
        label_file.write_text(f"{head}{bad}\n")
        with pytest.raises(
            CorpusError, match=rf"chunk_labels_5cl_corpus.txt:10: cannot parse chunk label "
            rf"line '{bad}'$"
        ):  # fmt: skip
            build_manifest("aibo", tmp_path)
    label_file.write_text(f"{head}Ohm_01_009_00\tn\t1\n")
    write_wav(tmp_path / "wav/Ohm_01_009_00.wav")
    _, excluded = build_manifest("aibo", tmp_path)
    assert excluded.to_dict("records") == [
        {
            "utt_id": "Ohm_01_009_00",
            "path": str(tmp_path / "wav/Ohm_01_009_00.wav"),
            "reason": "class_not_in_5cl: n",
        }
    ]


@pytest.mark.parametrize(
    ("line", "shown"),
    [(" [3.0 - 4.0]\tSes01F_impro01_F001\tang\t[1, 1, 1]", None),  # indented: read
     ("\ufeff[3.0 - 4.0]\tSes01F_impro01_F001\tang\t[1, 1, 1]", None),  # a BOM: read
     ("3.0 - 4.0\tSes01F_impro01_F001\tang\t[1, 1, 1]", "'Ses01F_impro01_F001' but does "
      r"not start with \[START - END\] as a turn line does: '3.0 - 4.0\\tSes01F")],
)  # fmt: skip
def test_iemocap_a_turn_line_not_led_by_its_bracket_is_read_or_named(
    tmp_path, write_wav, line, shown
):
    """A turn line that did not start with `[` (indented, after a byte-order mark, the
    bracket lost) was skipped as if an evaluator's line: the turn vanished, not even in
    excluded.parquet."""
    _iemocap(tmp_path, write_wav)
    f = tmp_path / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    f.write_text(f"{line}\nC-E2:\tAnger; ()\n{f.read_text()}")
    write_wav(tmp_path / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F001.wav")
    if shown is None:
        manifest, excluded = build_manifest("iemocap", tmp_path)
        assert excluded.empty
        row = manifest.set_index("utt_id").loc["Ses01F_impro01_F001"]
        assert (row["label"], row["speaker"]) == ("angry", "Ses01F")
    else:
        with pytest.raises(
            CorpusError, match=rf"Ses01F_impro01.txt:1: line names utterance {shown}"
        ):
            build_manifest("iemocap", tmp_path)


def test_aibo_default_dev_is_the_last_two_of_the_26_real_ohm_children(tmp_path, write_wav):
    """DESIGN: dev = the last two Ohm speakers in sorted order (autrainer's Ohm_31, Ohm_32),
    whatever the order of the label file's lines; it was tested with 4 children in order."""
    import random

    lines = [f"Ohm_{c:02d}_001_00 {'NAEPR'[c % 5]} 1.0" for c in OHM_CHILDREN]
    lines += [f"Mont_{c:02d}_001_00 N 1.0" for c in range(1, 26)]
    random.Random(1).shuffle(lines)
    assert lines[-1].startswith("Ohm_") and not lines[-1].startswith("Ohm_32")
    _aibo(tmp_path, lines, write_wav)
    for _ in range(2):  # the same split each time
        m, _ = build_manifest("aibo", tmp_path)
        speakers = m.groupby("split")["speaker"].unique().map(sorted).to_dict()
        assert speakers["dev"] == ["Ohm_31", "Ohm_32"]
        assert speakers["train"] == [f"Ohm_{c:02d}" for c in OHM_CHILDREN[:-2]]
        assert speakers["test"] == [f"Mont_{c:02d}" for c in range(1, 26)]
    m, _ = build_manifest("aibo", tmp_path, n_dev_speakers=3)
    assert sorted(set(m.loc[m["split"] == "dev", "speaker"])) == ["Ohm_30", "Ohm_31", "Ohm_32"]


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x1e"])
def test_utt_id_with_a_unicode_line_separator_is_refused(tmp_path, write_wav, char):
    """U+2028/U+2029 (and NEL, the record separator) end a line for str.splitlines and
    for JSON-lines readers that split on them; only tabs and line feeds were tested."""
    write_wav(tmp_path / f"b{char}c.wav")
    sheet = tmp_path / "s.csv"
    sheet.write_text(f"path,label,speaker,utt_id\nb{char}c.wav,sad,s1,u{char}1\n")
    with pytest.raises(CorpusError, match=r"^s.csv:2: utt_id 'u\\[ux].*1' holds control"):
        build_manifest("csv", sheet, labels={"sad": []})
    sheet.write_text(f"path,label,speaker\nb{char}c.wav,sad,s1\n")  # the id from the path
    with pytest.raises(CorpusError, match=r"^s.csv:2: utt_id 'b\\[ux].*c' holds control"):
        build_manifest("csv", sheet, labels={"sad": []})


def test_csv_every_gender_spelling_in_any_case_and_others_kept_as_written(tmp_path, write_wav):
    """Each spelling of GENDERS in lower, upper and title case becomes F or M; any other
    value is kept as written (never made F or M: it takes the pooled edges, flagged
    `pooled_edges` by the tokens stage), an empty cell `unknown`."""
    spellings = {"f": "F", "female": "F", "w": "F", "woman": "F",
                 "m": "M", "male": "M", "man": "M"}  # fmt: skip
    cells, want = [], []
    for spelling, gender in spellings.items():
        for cell in (spelling, spelling.upper(), f" {spelling.title()} "):
            cells.append(cell)
            want.append(gender)
    others = ["boy", "männlich", "femal", "X", ""]
    cells += others
    want += [*others[:-1], "unknown"]
    for i in range(len(cells)):
        write_wav(tmp_path / f"{i:02d}.wav", 0.1)
    sheet = tmp_path / "s.csv"
    sheet.write_text(
        "path,label,speaker,gender\n"
        + "".join(f"{i:02d}.wav,sad,s{i},{g}\n" for i, g in enumerate(cells))
    )
    manifest, _ = build_manifest("csv", sheet, labels={"sad": []})
    assert manifest["gender"].tolist() == want
    assert sheet_summary(sheet).genders == {
        "F": 12, "M": 9, "boy": 1, "männlich": 1, "femal": 1, "X": 1, "unknown": 1,
    }  # fmt: skip


def test_csv_session_column_is_read_in_any_case_and_defaults_to_the_speaker(tmp_path, write_wav):
    """`session` (any case) is the manifest's session; an empty cell, or no such column,
    gives the speaker. A mutant that always took the speaker passed."""
    for name in "abc":
        write_wav(tmp_path / f"{name}.wav")
    sheet = tmp_path / "s.csv"
    sheet.write_text("path,label,speaker,Session\na.wav,sad,s1,day1\nb.wav,sad,s2,day1\n"
                     "c.wav,sad,s3,\n")  # fmt: skip
    manifest, _ = build_manifest("csv", sheet, labels={"sad": []})
    assert manifest[["speaker", "session"]].values.tolist() == [
        ["s1", "day1"], ["s2", "day1"], ["s3", "s3"],
    ]  # fmt: skip
    sheet.write_text("path,label,speaker\na.wav,sad,s1\nb.wav,sad,s2\n")
    manifest, _ = build_manifest("csv", sheet, labels={"sad": []})
    assert manifest["session"].tolist() == ["s1", "s2"]


@pytest.mark.parametrize("sheet_form", ["NFC", "NFD"])
def test_csv_paths_whose_folders_and_names_differ_in_unicode_form_are_found(
    tmp_path, write_wav, sheet_form
):
    """An archive made on macOS (NFD names) unpacked into a folder made on Linux (NFC):
    neither form of the whole path exists, and every accented file was `missing_audio`."""
    import unicodedata

    folder = unicodedata.normalize("NFC", "Études")
    name = unicodedata.normalize("NFD", "émotion.wav")
    on_disk = write_wav(tmp_path / folder / "audio" / name)
    write_wav(tmp_path / unicodedata.normalize("NFD", "Données") / "b.wav")
    sheet = tmp_path / "s.csv"
    rows = unicodedata.normalize(
        sheet_form, "Études/audio/émotion.wav,sad,s1\nDonnées/b.wav,sad,s2"
    )
    sheet.write_text(f"path,label,speaker\n{rows}\n")
    manifest, excluded = build_manifest("csv", sheet, labels={"sad": []})
    assert excluded.empty, excluded.to_dict("records")
    assert manifest["path"].tolist() == [
        str(tmp_path / unicodedata.normalize("NFD", "Données") / "b.wav"),
        str(on_disk),
    ]


@pytest.mark.parametrize(
    ("column", "cells", "meant"),
    [("part", "train test train test notes", "split"),  # 4 in 5: read as splits
     ("part", "train test train test notes notes", None),  # 4 in 6
     ("part", "train test train notes", None),  # 3 in 4
     ("sex", "F M unknown na child", "gender"),  # "not known" cells count, not as a kind
     ("sex", "F M child boy", None),  # 2 in 4
     ("part", "train train train train", None)],  # one kind
)  # fmt: skip
def test_an_unread_column_is_taken_for_splits_or_genders_from_four_cells_in_five(
    tmp_path, column, cells, meant
):
    """The boundary of the check for a split or gender column under another name: at
    least four in five of its non-empty cells such values, two kinds among them."""
    sheet = tmp_path / "s.csv"
    rows = "".join(f"{i}.wav,sad,s{i},{c}\n" for i, c in enumerate(cells.split()))
    sheet.write_text(f"path,label,speaker,{column}\n{rows}x.wav,sad,sx,\n")
    if meant is None:
        assert sheet_summary(sheet).splits == {"test"}
    else:
        with pytest.raises(CorpusError, match=rf"column '{column}' holds {meant} values"):
            sheet_summary(sheet)
