"""Tables II-III and the cue-use summary from evaluation tables of synthetic runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cueprobe import tables
from cueprobe.metrics import DegenerateEffectWarning
from cueprobe.stats import evaluate
from cueprobe.summary import cue_use_summary
from tests.unit.test_stats import LABELS
from tests.unit.test_stats import fake_run

REPO = Path(__file__).resolve().parents[2]

MODELS = {
    "af3": {"label": "AF3", "paper_row": "AF3", "zero_shot": True},
    "reference": {"label": "Reference", "paper_row": None, "zero_shot": False},
}
PAPER = {
    "AF3": {
        "table3_uar_minus": 0.754,
        "table3_uar_plus": 0.776,
        "table2_dev_uar_minus": 0.259,
        "table2_dev_uar_plus": 0.268,
    }
}
LITERATURE = [
    {"table": "III", "name": "CLAP", "uar": 0.353, "source": "[26]"},
    {"table": "III", "name": "ParaCLAP", "uar": 0.600, "source": "[26]"},
    {"table": "II", "name": "IS09 baseline", "split": "test", "uar": 0.382, "source": "[23]"},
]


def evaluation(corpus, model, splits, seed, split_of=None):
    manifest, preds = fake_run(seed=seed, split_of=split_of)
    ev = evaluate(
        preds, manifest, labels=LABELS, splits=splits, n_resamples=200, confidence_level=0.95,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    for frame in (ev.metrics, ev.comparisons, ev.corruption):
        frame.insert(0, "model", model)
        frame.insert(0, "corpus", corpus)
    return ev


@pytest.fixture(scope="module")
def iemocap():
    evs = [evaluation("iemo", "af3", ["all"], 1), evaluation("iemo", "reference", ["test"], 2)]
    return (
        pd.concat([e.metrics for e in evs], ignore_index=True),
        pd.concat([e.comparisons for e in evs], ignore_index=True),
        evs,
    )


@pytest.fixture(scope="module")
def aibo():
    def split_of(i):
        return "dev" if i < 72 else "test"

    evs = [
        evaluation("aibo", "af3", ["dev", "test"], 3, split_of),
        evaluation("aibo", "reference", ["test"], 4, split_of),
    ]
    return (
        pd.concat([e.metrics for e in evs], ignore_index=True),
        pd.concat([e.comparisons for e in evs], ignore_index=True),
    )


def test_the_papers_values_stand_beside_the_papers_corpus_only(iemocap, aibo):
    """A CSV corpus beside IEMOCAP in Table III got the paper's IEMOCAP numbers on its
    rows too, its few-speaker note read like IEMOCAP's ("‡ Reference (test)" twice), and
    a quoted UAR did not say which corpus it is on."""
    metrics, comparisons, _ = iemocap
    mine = [
        frame.assign(corpus="mine") for frame in (metrics, comparisons)
    ]  # the same runs, another corpus
    both = [
        pd.concat([a, b], ignore_index=True)
        for a, b in zip((metrics, comparisons), mine, strict=True)
    ]
    literature = [
        *LITERATURE,
        {"table": "III", "name": "Ours 2025", "uar": 0.5, "source": "[9]", "corpus": "mine"},
    ]
    kw = dict(models=MODELS, literature=literature, paper=PAPER)
    t = tables.table3(*both, **kw, paper_corpora=["iemo"]).set_index(["corpus", "label"])
    assert t.loc[("iemo", "AF3"), "uar_minus_paper"] == 0.754
    assert np.isnan(t.loc[("mine", "AF3"), "uar_minus_paper"])
    assert np.isnan(t.loc[("mine", "AF3"), "delta_paper"])
    assert t.loc[("", "CLAP"), "quoted_on"] == "IEMOCAP"
    assert t.loc[("", "Ours 2025"), "quoted_on"] == "mine"
    # without paper_corpora (a table of one corpus): every corpus is the paper's
    every = tables.table3(*both, **kw).set_index(["corpus", "label"])
    assert every.loc[("mine", "AF3"), "uar_minus_paper"] == 0.754
    # no corpus of the paper's: no paper columns at all
    none = tables.table3(*both, **kw, paper_corpora=[])
    assert not any(c.endswith("_paper") for c in none.columns)

    md = tables.to_markdown(t.reset_index(), kind="III", title="t")
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert rows["| iemo / AF3"].endswith("| .754 | .776 | +0.022 |")
    assert rows["| mine / AF3"].endswith("| – | – | – |")
    assert "† CLAP: quoted from [26], on IEMOCAP; not run here." in md
    assert "† Ours 2025: quoted from [9], on mine; not run here." in md
    few = tables.to_markdown(t.reset_index().assign(n_speakers=2.0), kind="III", title="t")
    assert "‡ iemo / Reference (test):" in few and "‡ mine / Reference (test):" in few
    assert "‡ Reference (test)" not in few

    # Table II alike: FAU-Aibo's values beside FAU-Aibo's rows only
    a_metrics, a_comparisons = aibo
    pair = [
        pd.concat([f, f.assign(corpus="kids")], ignore_index=True)
        for f in (a_metrics, a_comparisons)
    ]
    t2 = tables.table2(*pair, **kw, paper_corpora=["aibo"]).set_index(["corpus", "label"])
    assert t2.loc[("aibo", "AF3"), "dev_uar_minus_paper"] == 0.259
    assert np.isnan(t2.loc[("kids", "AF3"), "dev_uar_minus_paper"])
    assert t2.loc[("", "IS09 baseline"), "quoted_on"] == "FAU-Aibo"
    md2 = tables.to_markdown(t2.reset_index(), kind="II", title="t")
    assert "† IS09 baseline: quoted from [23], on FAU-Aibo; not run here." in md2


def test_make_table_gives_the_papers_values_to_the_corpora_it_is_told(iemocap, tmp_path):
    """The rule passes --paper-corpora (the corpora of the paper's adapter): make-table
    dropping it put the paper's IEMOCAP numbers beside a CSV corpus's rows again, and a
    quoted row of a table of several corpora read " / CLAP"; without the flag every
    corpus is the paper's, as before the flag existed."""
    from cueprobe import io
    from cueprobe.cli import main

    metrics, comparisons, _ = iemocap
    for frame, kind in ((metrics, "metrics"), (comparisons, "comparisons")):
        both = pd.concat([frame, frame.assign(corpus="mine")], ignore_index=True)
        io.write_table(both, tmp_path / f"{kind}.parquet", kind)
    argv = ["make-table", "--table", "III", "--models", json.dumps(MODELS)]
    argv += ["--literature", json.dumps(LITERATURE), "--paper", json.dumps(PAPER)]
    for kind in ("metrics", "comparisons"):
        argv += [f"--{kind}", str(tmp_path / f"{kind}.parquet")]
    for kind in ("csv", "md", "tex"):
        argv += [f"--{kind}-out", str(tmp_path / f"t.{kind}")]

    def rows(*extra: str) -> dict[str, str]:
        assert main([*argv, *extra]) == 0
        md = (tmp_path / "t.md").read_text()
        return {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}

    told = rows("--paper-corpora", json.dumps(["iemo"]))
    assert told["| iemo / AF3"].endswith("| .754 | .776 | +0.022 |")
    assert told["| mine / AF3"].endswith("| – | – | – |")
    assert {"| CLAP †", "| ParaCLAP †"} <= set(told)  # quoted: no corpus before the name
    every = rows()
    assert every["| mine / AF3"].endswith("| .754 | .776 | +0.022 |")


def test_a_note_on_a_class_a_split_lacks_names_the_corpus_in_a_table_of_several(iemocap):
    """Two "§ AF3 (all)" notes told a table's two corpora apart by nothing."""
    metrics, comparisons, _ = iemocap
    other = metrics.assign(corpus="mine", absent_classes="sad"), comparisons.assign(corpus="mine")
    t = tables.table3(
        pd.concat([metrics, other[0]]), pd.concat([comparisons, other[1]]), models=MODELS
    )
    md = tables.to_markdown(t, kind="III", title="t")
    assert "§ mine / AF3 (all): no utterance of sad in this split" in md
    assert "§ AF3" not in md and "§ iemo /" not in md


def test_table3_rows_values_and_quoted_references(iemocap):
    metrics, comparisons, _ = iemocap
    t = tables.table3(metrics, comparisons, models=MODELS, literature=LITERATURE, paper=PAPER)
    assert t["label"].tolist() == ["AF3", "Reference", "CLAP", "ParaCLAP"]
    assert t["group"].tolist() == ["zero_shot", "trained", "quoted", "quoted"]
    af3 = t.iloc[0]
    m = metrics[(metrics["model"] == "af3")].set_index("condition")
    assert af3["split"] == "all" and t.iloc[1]["split"] == "test"
    assert af3["uar_minus"] == m.loc["audio_only", "uar"]
    assert af3["uar_plus_ci_high"] == m.loc["aligned", "ci_high"]
    assert af3["delta"] == pytest.approx(af3["uar_plus"] - af3["uar_minus"])
    assert af3["uar_minus_paper"] == 0.754 and af3["delta_paper"] == pytest.approx(0.022)
    assert np.isnan(t.iloc[1]["uar_minus_paper"])
    clap = t.iloc[2]
    assert clap["quoted"] and clap["uar_minus"] == 0.353 and np.isnan(clap["uar_plus"])

    md = tables.to_markdown(t, kind="III", title="Table III")
    assert "| AF3 | all |" in md and "CLAP †" in md
    assert "† CLAP: quoted from [26], on IEMOCAP; not run here." in md
    assert (
        f"{tables.fmt_uar(af3['uar_minus'])} | {tables.fmt_ci(af3['uar_minus_ci_low'], af3['uar_minus_ci_high'])}"
        in md
    )
    tex = tables.to_latex(t, kind="III", title="Table III", label="tab:t3")
    assert "\\toprule" in tex and "CLAP $^\\dagger$" in tex and "95\\% CI" in tex
    assert tex.count("\\\\") == 1 + 4 + 3  # header, rows, group lines


def test_labels_with_latex_and_markdown_specials_stay_text(iemocap):
    """A model label with LaTeX specials broke the .tex (``^`` outside math, braces
    dropped, a ``$`` opening math) and a ``|`` split the Markdown row."""
    metrics, comparisons, _ = iemocap
    label = "AF3|think ~v2 ^x {a} $1"
    models = {**MODELS, "af3": {**MODELS["af3"], "label": label}}
    t = tables.table3(metrics, comparisons, models=models, literature=[], paper={})
    tex = tables.to_latex(t, kind="III", title="T", label="l")
    row = next(line for line in tex.splitlines() if line.startswith("AF3"))
    assert row.startswith(
        r"AF3\textbar{}think \textasciitilde{}v2 \textasciicircum{}x \{a\} \$1 & all & "
    )
    assert len(re.findall(r"(?<!\\)\$", row)) % 2 == 0  # every math segment closed
    md = tables.to_markdown(t, kind="III", title="T")
    lines = md.splitlines()
    header = lines[2]
    af3 = next(line for line in lines if line.startswith("| AF3"))
    assert r"AF3\|think" in af3
    unescaped = lambda line: len(re.findall(r"(?<!\\)\|", line))  # noqa: E731
    assert unescaped(af3) == unescaped(header)


def test_table2_dev_test_columns_and_missing_split(aibo):
    metrics, comparisons = aibo
    t = tables.table2(metrics, comparisons, models=MODELS, literature=LITERATURE, paper=PAPER)
    assert t["label"].tolist() == ["AF3", "Reference", "IS09 baseline"]
    ref = t.iloc[1]
    assert np.isnan(ref["dev_uar_minus"]) and not np.isnan(ref["test_uar_minus"])
    af3 = t.iloc[0]
    m = metrics[(metrics["model"] == "af3") & (metrics["split"] == "dev")].set_index("condition")
    assert af3["dev_uar_plus"] == m.loc["aligned", "uar"]
    assert af3["dev_uar_minus_paper"] == 0.259 and np.isnan(af3["test_uar_minus_paper"])
    assert t.iloc[2]["test_uar_minus"] == 0.382
    md = tables.to_markdown(t, kind="II", title="Table II")
    assert md.splitlines()[2].startswith("| Model | dev UAR⁻ | dev UAR⁺ | dev Δ |")
    assert "| Reference | – | – | – |" in md
    # the paper's Δ beside its UARs, as in Table III (the csv had it, md and tex did not)
    header = md.splitlines()[2]
    assert "| dev paper UAR⁻ | dev paper UAR⁺ | dev paper Δ |" in header
    af3_row = next(line for line in md.splitlines() if line.startswith("| AF3"))
    assert "| .259 | .268 | +0.009 |" in af3_row
    tex = tables.to_latex(t, kind="II", title="Table II", label="tab:2")
    assert "+0.009" in tex
    # the run's own cells, in the header's order (UAR⁻ and UAR⁺ swapped passed), and the
    # CSV's Holm p and speaker count from the comparison and metrics tables (the raw p and
    # the utterance count passed)
    minus, plus = m.loc["audio_only", "uar"], m.loc["aligned", "uar"]
    cells = f"| AF3 | {tables.fmt_uar(minus)} | {tables.fmt_uar(plus)} | "
    assert af3_row.startswith(cells + f"{tables.fmt_delta(plus - minus)} |")
    c = comparisons.set_index(["model", "split", "a", "b", "role"])
    assert af3["dev_p_holm"] == c.loc[("af3", "dev", "aligned", "audio_only", "primary"), "p_holm"]
    assert af3["dev_p_holm"] != c.loc[("af3", "dev", "aligned", "audio_only", "primary"), "p"]
    assert af3["dev_n_speakers"] == m.loc["aligned", "n_speakers"] == 3
    # a quoted reference without a split is a test-set figure
    plain = [{k: v for k, v in LITERATURE[2].items() if k != "split"}]
    quoted = tables.table2(metrics, comparisons, models=MODELS, literature=plain).iloc[-1]
    assert quoted["test_uar_minus"] == 0.382 and np.isnan(quoted["dev_uar_minus"])


def test_tables_without_paper_rows_have_no_paper_columns(iemocap):
    metrics, comparisons, _ = iemocap
    plain = {m: v | {"paper_row": None} for m, v in MODELS.items()}
    t = tables.table3(metrics, comparisons, models=plain)
    assert not any(c.endswith("_paper") for c in t.columns)


def test_several_corpora_are_named_in_the_rows(iemocap):
    metrics, comparisons, _ = iemocap
    other = metrics.assign(corpus="csvcorpus"), comparisons.assign(corpus="csvcorpus")
    t = tables.table3(
        pd.concat([metrics, other[0]]), pd.concat([comparisons, other[1]]), models=MODELS
    )
    assert "| csvcorpus / AF3 |" in tables.to_markdown(t, kind="III", title="t")


def test_table_errors(iemocap):
    metrics, comparisons, _ = iemocap
    with pytest.raises(ValueError, match=r"metrics table lacks column\(s\) \['uar'\]"):
        tables.table3(metrics.drop(columns="uar"), comparisons, models=MODELS)
    with pytest.raises(ValueError, match=r"comparisons table lacks column\(s\) \['p'\]"):
        tables.table3(metrics, comparisons.drop(columns="p"), models=MODELS)
    with pytest.raises(ValueError, match="model 'af3' of the evaluation tables is not in `models`"):
        tables.table3(metrics, comparisons, models={"reference": MODELS["reference"]})
    bad = [{"table": "II", "name": "X", "split": "train", "uar": 0.3, "source": "s"}]
    with pytest.raises(ValueError, match="literature row 'X' of Table II has split 'train'"):
        tables.table2(metrics, comparisons, models=MODELS, literature=bad)


def test_number_formats():
    assert tables.fmt_uar(0.7541) == ".754"
    assert tables.fmt_uar(-0.25) == "-.250"
    assert tables.fmt_delta(0.0224) == "+0.022"
    assert tables.fmt_ci(0.011, 0.025) == "[.011, .025]"
    assert tables.fmt_ci(float("nan"), 0.2) == "–"
    assert tables.fmt_p(4e-7) == "4.0e-07"
    assert tables.fmt_p(0.0042) == "0.0042"
    assert tables.fmt_p(0.0496) == "0.049"  # rounded down: never reads as .05
    assert tables.fmt_p(0.00999) == "0.0099"
    assert tables.fmt_p(0.0) == "0"
    # rounded down in scientific notation too: p < 1e-4 printed "1.0e-04" (Figure 3)
    assert tables.fmt_p(9.999964e-5) == "9.9e-05" and tables.fmt_p(4.96e-8) == "4.9e-08"
    assert tables.fmt_p(1e-5) == "1.0e-05" and tables.fmt_p(0.000999) == "9.9e-04"
    assert tables.fmt_p(4.96e-8, latex=True) == "$4.9\\times10^{-8}$"
    assert tables.fmt_p(float("nan")) == "–"
    # a p that rounds up to the next power of ten keeps one digit before the point
    assert tables.fmt_p(9.99999999995e-4) == "1.0e-03"


def test_text_outputs_are_byte_identical_on_regeneration(iemocap):
    metrics, comparisons, _ = iemocap
    kw = dict(models=MODELS, literature=LITERATURE, paper=PAPER)
    a = tables.table3(metrics, comparisons, **kw)
    b = tables.table3(metrics.copy(), comparisons.copy(), **kw)
    assert tables.to_csv(a) == tables.to_csv(b)
    assert tables.to_markdown(a, kind="III", title="t") == tables.to_markdown(
        b, kind="III", title="t"
    )
    assert tables.to_latex(a, kind="III", title="t", label="l") == tables.to_latex(
        b, kind="III", title="t", label="l"
    )
    back = pd.read_csv(pd.io.common.StringIO(tables.to_csv(a)))
    np.testing.assert_allclose(back["uar_minus"], a["uar_minus"], rtol=1e-9)


def test_cue_use_summary_words_and_numbers(iemocap):
    _, _, evs = iemocap
    ev = evs[0]
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="iemo", model="AF3", alpha=0.05
    )
    assert text.startswith("# Cue use of AF3 on iemo")
    assert "## Split: all (144 utterances, 6 speakers)" in text
    assert "**Uses the cues.**" in text  # fake_run: aligned .8 vs audio-only .5
    gain = ev.comparisons.query("a == 'aligned' and b == 'audio_only'").iloc[0]
    assert tables.fmt_delta(gain["delta"]) in text
    assert "**Degradation.**" in text
    # the mean of the corruption runs leaves out p = 0 (the aligned prompts again)
    runs = ev.metrics[(ev.metrics["kind"] == "corrupt") & (ev.metrics["p"] > 0)]
    assert (
        f"| corrupt p > 0 ({len(runs)} runs, mean) | {tables.fmt_uar(runs['uar'].mean())} |" in text
    )
    for section in ("Robust fallback", "Format prior", "Token sensitivity", "Alignment"):
        assert f"**{section}**" in text
    # the paper's central test, aligned vs each perturbation, with its evidence
    line = next(x for x in text.splitlines() if x.startswith("- **Alignment**"))
    for b in ("conflict", "shuffle", "corrupt_p100"):
        row = ev.comparisons.query(f"a == 'aligned' and b == '{b}' and role == 'primary'")
        assert f"vs {b}: ΔUAR {tables.fmt_delta(row['delta'].iloc[0])}" in line
    assert "corrupt_p50" not in line  # the far end of the curve only
    # the Holm family is named with its size
    family = int((ev.comparisons["role"] == "primary").sum())
    assert f"Holm runs over the {family} primary comparisons of this model on its split" in text


def test_cue_use_summary_gives_no_verdicts_on_answers_it_could_not_read():
    """A model that answered '' to everything (100 % unparsed) got "No detectable format
    prior" and an ordinary Table III row, with exit code 0; one label for every clip
    (a model that does not hear the audio) went unremarked."""
    from cueprobe.summary import answer_alarms

    manifest, preds = fake_run(seed=5)
    empty = preds["audio_only"].assign(pred="", parse_status="unparsed")
    empty.loc[:9, ["pred", "parse_status"]] = ["sad", "exact"]
    ev = evaluate(
        preds | {"audio_only": empty}, manifest, labels=LABELS, splits=["test"],
        n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05,
        confusion=ev.confusion,
    )  # fmt: skip
    share = 1 - 10 / len(manifest)
    assert (
        f"> **Check the answers first.** {share:.1%} of the {len(manifest)} audio-only answers "
        "are unparsed (counted wrong): read their raw_output; the prompt, answer_pattern or "
        "max_new_tokens may not fit this model. Every parsed audio-only answer is 'sad' (10 "
        "utterances): the model may not hear the audio"
    ) in text
    verdicts = {x.split("**")[1]: x for x in text.splitlines() if x.startswith("- **")}
    # the verdicts against audio-only are not given; those without it stand
    for name in ("Token sensitivity", "Robust fallback", "Format prior"):
        assert (
            f"Not assessed: {1 - 10 / len(manifest):.1%} of the audio_only answers are "
            in (verdicts[name])
        )
    for name in ("Alignment", "Monotone degradation"):
        assert "Not assessed" not in verdicts[name]
    assert "No detectable" not in text and "Uses the cues" not in text
    # a token condition mostly unparsed: the verdicts that read it are not given
    long = preds["aligned"].assign(pred="", parse_status="unparsed")
    ev = evaluate(
        preds | {"aligned": long}, manifest, labels=LABELS, splits=["test"],
        n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05
    )
    verdicts = {x.split("**")[1]: x for x in text.splitlines() if x.startswith("- **")}
    assert [n for n, x in verdicts.items() if "Not assessed: 100.0% of the aligned" in x] == [
        "Token sensitivity", "Alignment", "Monotone degradation",
    ]  # fmt: skip
    # a constant label alone warns but keeps the verdicts (the tokens may still move it)
    constant = preds["audio_only"].assign(pred="neutral", parse_status="exact")
    ev = evaluate(
        preds | {"audio_only": constant}, manifest, labels=LABELS, splits=["test"],
        n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    (alarm,) = answer_alarms(ev.metrics, ev.confusion)["test"]
    assert alarm.startswith(f"every parsed audio-only answer is 'neutral' ({len(manifest)} ")
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05,
        confusion=ev.confusion,
    )  # fmt: skip
    assert "> **Check the answers first.** Every parsed audio-only answer is 'neutral'" in text
    assert "Not assessed" not in text
    # an ordinary run: no alarm
    ev = evaluate(
        preds, manifest, labels=LABELS, splits=["test"], n_resamples=50,
        confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    assert answer_alarms(ev.metrics, ev.confusion) == {"test": []}


def test_error_answers_void_the_verdicts_that_read_them_and_raise_an_alarm():
    """Error rows (the model or its server failed: no answer) were scored wrong and
    counted as unparsed: a server that rejected 27 % of the token prompts made "Aligned
    tokens hurt" with Holm p 4e-6 out of a model right on every answer it gave, exit 0."""
    from cueprobe.summary import TOLERATED_ERRORS
    from cueprobe.summary import answer_alarms

    manifest, preds = fake_run(seed=5)
    rejected = preds["aligned"].copy()
    rejected.loc[: len(rejected) // 4, ["pred", "parse_status"]] = ["", "error"]
    ev = evaluate(
        preds | {"aligned": rejected}, manifest, labels=LABELS, splits=["test"],
        n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    m = ev.metrics.set_index("condition")
    n_error = len(rejected.loc[: len(rejected) // 4])
    assert m.loc["aligned", "n_error"] == n_error and m.loc["audio_only", "n_error"] == 0
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05,
        confusion=ev.confusion,
    )  # fmt: skip
    verdicts = {x.split("**")[1]: x for x in text.splitlines() if x.startswith("- **")}
    share = n_error / len(manifest)
    assert share > TOLERATED_ERRORS
    assert [n for n, x in verdicts.items() if f"{share:.1%} of the aligned answers are errors" in x] == [
        "Token sensitivity", "Alignment", "Monotone degradation",
    ]  # fmt: skip
    # 2 % errors already withhold them (errors move UAR by about their share; the
    # effects read are 0.01-0.04): a mutant tolerating 5 % passed
    few = preds["aligned"].copy()
    few.loc[few.index[:3], ["pred", "parse_status"]] = ["", "error"]  # 3 of 144
    ev2 = evaluate(
        preds | {"aligned": few}, manifest, labels=LABELS, splits=["test"],
        n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    text2 = cue_use_summary(ev2.metrics, ev2.comparisons, ev2.corruption, corpus="c", model="m",
                            alpha=0.05)  # fmt: skip
    assert "Not assessed: 2.1% of the aligned answers are errors" in text2
    # exactly half of the audio-only answers unparsed: not assessed either
    half = preds["audio_only"].assign(pred="sad", parse_status="exact")
    half.loc[half.index[: len(half) // 2], ["pred", "parse_status"]] = ["", "unparsed"]
    ev2 = evaluate(
        preds | {"audio_only": half}, manifest, labels=LABELS, splits=["test"],
        n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    assert ev2.metrics.set_index("condition").loc["audio_only", "unparsed_rate"] == 0.5
    text2 = cue_use_summary(ev2.metrics, ev2.comparisons, ev2.corruption, corpus="c", model="m",
                            alpha=0.05)  # fmt: skip
    assert "Not assessed: 50.0% of the audio_only answers are" in text2
    (alarm,) = answer_alarms(ev.metrics, ev.confusion)["test"]
    assert alarm.startswith(
        f"{n_error} error answer(s), where the model or its server failed or the audio could not be read"
    )
    assert f"aligned {n_error})" in alarm and "--forcerun query_audio_only" in alarm
    assert "**Check the answers first.**" in text
    # one error in a condition: an alarm, but the verdicts stand (under the tolerance)
    one = preds["aligned"].copy()
    one.loc[0, ["pred", "parse_status"]] = ["", "error"]
    ev = evaluate(
        preds | {"aligned": one}, manifest, labels=LABELS, splits=["test"],
        n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    assert 1 / len(manifest) <= TOLERATED_ERRORS
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05
    )
    assert "Not assessed" not in text
    assert answer_alarms(ev.metrics)["test"][0].startswith("1 error answer(s)")
    # metrics written before n_error existed are read as before
    assert answer_alarms(ev.metrics.drop(columns="n_error")) == {"test": []}


def test_a_class_the_split_lacks_heads_the_page(tmp_path, capsys):
    """A dev split without one class (FAU-Aibo's two dev children and `positive`): its UAR
    was a mean over fewer classes, printed beside full-class UARs, and only a Python
    warning in the job log said so; the summary said "0 lacked a class"."""
    from cueprobe.summary import answer_alarms

    manifest, preds = fake_run(seed=5)
    keep = manifest["label"] != "sad"
    manifest = manifest[keep]
    preds = {k: v[v["utt_id"].isin(manifest["utt_id"])] for k, v in preds.items()}
    with pytest.warns(DegenerateEffectWarning, match=r"\['sad'\] absent from `y_true`"):
        ev = evaluate(
            preds, manifest, labels=LABELS, splits=["test"],
            n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0),
        )  # fmt: skip
    assert (ev.metrics["n_classes"] == len(LABELS) - 1).all()
    (alarm,) = answer_alarms(ev.metrics, ev.confusion)["test"]
    k = len(LABELS) - 1
    assert alarm == (
        f"class(es) ['sad'] have no utterance in this split: its UARs are means over the "
        f"other {k} classes (chance 1/{k}), not comparable with a UAR over all {len(LABELS)} "
        "(the paper's, another split's)"
    )
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05,
        confusion=ev.confusion,
    )  # fmt: skip
    assert "**Check the answers first.**" in text and "['sad'] have no utterance" in text
    # and Tables II and III mark its UARs (they were printed as full-class UARs)
    assert (ev.metrics["absent_classes"] == "sad").all()
    metrics = ev.metrics.assign(corpus="c", model="m")
    comparisons = ev.comparisons.assign(corpus="c", model="m")
    models = {"m": {"label": "M", "zero_shot": True}}
    note = (
        "§ M (test): no utterance of sad in this split; its UARs average the other classes "
        "(another chance level), not comparable with a UAR over all."
    )
    for kind, table in (
        ("II", tables.table2(metrics, comparisons, models=models)),
        ("III", tables.table3(metrics, comparisons, models=models)),
    ):
        md = tables.to_markdown(table, kind=kind, title="t")
        assert note in md and md.count(" §") == 2, md
        assert r"\S{}" in tables.to_latex(table, kind=kind, title="t", label="l")
    full = metrics.assign(absent_classes="")
    assert "§" not in tables.to_markdown(
        tables.table3(full, comparisons, models=models), kind="III", title="t"
    )
    # metrics evaluated before these columns existed: make-table (through io's contract,
    # as the rule runs it) reads them as before
    from cueprobe import io
    from cueprobe.cli import main

    old = tmp_path / "metrics.parquet"
    io.write_table(metrics.drop(columns=["n_classes", "absent_classes", "n_error"]), old, "metrics")
    io.write_table(comparisons, tmp_path / "comparisons.parquet", "comparisons")
    argv = ["make-table", "--table", "II", "--metrics", str(old), "--comparisons"]
    argv += [str(tmp_path / "comparisons.parquet"), "--models", json.dumps(models)]
    for kind in ("csv", "md", "tex"):
        argv += [f"--{kind}-out", str(tmp_path / f"t.{kind}")]
    assert main(argv) == 0
    assert "§" not in (tmp_path / "t.md").read_text()
    # a metrics file given twice wrote a table of pandas Series text, then crashed with
    # "The truth value of a Series is ambiguous"
    for out in ("csv", "md", "tex"):
        (tmp_path / f"t.{out}").unlink()
    twice = [*argv[: argv.index("--comparisons")], str(old), *argv[argv.index("--comparisons") :]]
    assert main(twice) == 1
    assert "the --metrics files hold (" in capsys.readouterr().err
    assert not list(tmp_path.glob("t.*"))  # nothing written


COLS = ["delta", "ci_low", "ci_high", "p_holm", "mcnemar_b", "mcnemar_c"]


def test_cue_use_summary_needs_uar_and_utterance_counts_on_one_side(iemocap):
    """UAR lower by a CI that excludes 0, Holm p tiny, but more utterances right under
    conflict than under audio-only (b > c): classes weigh apart, no verdict."""
    ev = iemocap[2][0]
    comp = ev.comparisons.copy()
    sel = (comp["a"] == "conflict") & (comp["b"] == "audio_only")
    comp.loc[sel, COLS] = [-0.2, -0.3, -0.1, 0.001, 30, 2]
    text = cue_use_summary(ev.metrics, comp, ev.corruption, corpus="c", model="m", alpha=0.05)
    assert "**Over-reliance.**" not in text
    assert (
        "its CI excludes 0 (below) and Holm p is below alpha, but more utterances go the "
        "other way (McNemar's b and c): UAR and accuracy disagree"
    ) in text


def test_a_seed_pooled_p_of_1_says_its_seeds_disagree_beside_b_and_c(iemocap):
    """Seeds on either side give p = 1 with the least significant pair's b and c: the
    page read "McNemar p = 1 (Holm 1; b = 8, c = 0)", where b = 8, c = 0 alone is p .008."""
    ev = iemocap[2][0]
    comp = ev.comparisons.copy()
    sel = (comp["a"] == "aligned") & (comp["b"] == "shuffle") & (comp["role"] == "primary")
    comp.loc[sel, [*COLS, "p"]] = [0.01, -0.02, 0.04, 1.0, 8, 0, 1.0]
    text = cue_use_summary(ev.metrics, comp, ev.corruption, corpus="c", model="m", alpha=0.05)
    assert (
        "McNemar p = 1 (Holm 1; b = 8, c = 0 in its least significant seed pair; its seeds "
        "disagree on which is better)"
    ) in text
    assert "disagree on which is better" not in cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05
    )


def test_cue_use_summary_over_reliance_and_missing_conditions(iemocap):
    _, _, evs = iemocap
    ev = evs[0]
    comp = ev.comparisons.copy()
    sel = (comp["a"] == "conflict") & (comp["b"] == "audio_only")
    comp.loc[sel, COLS] = [-0.2, -0.3, -0.1, 0.001, 2, 30]
    text = cue_use_summary(ev.metrics, comp, ev.corruption, corpus="c", model="m", alpha=0.05)
    assert "**Over-reliance.**" in text
    assert "aligned vs corrupt_p100: ΔUAR" in text  # the curve's far end, with its CI
    # not significant after Holm, CI below 0: no claim that the model stays anchored
    # (it printed "Robust fallback ... the model stays anchored to the audio" for a
    # conflict that took UAR from .485 to .281)
    comp.loc[sel, COLS] = [-0.2, -0.3, -0.1, 0.15, 2, 30]
    text = cue_use_summary(ev.metrics, comp, ev.corruption, corpus="c", model="m", alpha=0.05)
    assert (
        "**Inconclusive.** Contradictory tokens are not significantly different from audio-only "
        "(its CI excludes 0 (below), but Holm p is not below alpha)"
    ) in text
    assert "stays anchored" in text and "this does not show" in text
    comp.loc[sel, COLS] = [-0.2, -0.3, -0.1, 0.001, 2, 30]
    end = (comp["a"] == "aligned") & (comp["b"] == "corrupt_p100") & (comp["role"] == "primary")
    comp.loc[end, ["ci_low", "ci_high"]] = [-0.01, 0.2]
    text = cue_use_summary(ev.metrics, comp, ev.corruption, corpus="c", model="m", alpha=0.05)
    assert "**Trend across runs only.** UAR falls with p" in text
    assert "**Degradation.**" not in text
    only = comp[comp["b"] != "audio_only"]
    text = cue_use_summary(
        ev.metrics, only, ev.corruption.iloc[0:0], corpus="c", model="m", alpha=0.05
    )
    assert "not measured (needs aligned and audio_only)" in text
    assert "not measured (no corruption runs)" in text
    # aligned beats one perturbation and another beats aligned: both are said
    mixed = comp.copy()
    for b, row in (
        ("conflict", [0.2, 0.1, 0.3, 0.001, 30, 2]),
        ("shuffle", [-0.2, -0.3, -0.1, 0.001, 2, 30]),
    ):
        sel = (mixed["a"] == "aligned") & (mixed["b"] == b) & (mixed["role"] == "primary")
        mixed.loc[sel, COLS] = row
    text = cue_use_summary(ev.metrics, mixed, ev.corruption, corpus="c", model="m", alpha=0.05)
    assert "Aligned tokens beat conflict" in text and "; shuffle beat(s) them." in text
    # Spearman undefined: it says which of the two did not vary
    one_p = ev.corruption[ev.corruption["p"] == 0.5].assign(rho=np.nan, rho_p=np.nan)
    text = cue_use_summary(ev.metrics, comp, one_p, corpus="c", model="m", alpha=0.05)
    assert "**Undefined.** p does not vary over the" in text
    flat = ev.corruption.assign(rho=np.nan, rho_p=np.nan)
    text = cue_use_summary(ev.metrics, comp, flat, corpus="c", model="m", alpha=0.05)
    assert "**Undefined.** UAR does not vary over the" in text
    # NaN for want of runs, however much UAR varies (it said "UAR does not vary")
    two = ev.corruption[ev.corruption["p"].isin([0.0, 1.0])].assign(rho=np.nan, n_runs=2)
    assert two["uar_mean"].nunique() == 2
    text = cue_use_summary(ev.metrics, comp, two, corpus="c", model="m", alpha=0.05)
    assert "**Undefined.** Only 2 (p, seed) run(s): Spearman's ρ needs 3." in text
    # a significant trend without aligned: no far-end CI to be within (it said it was)
    text = cue_use_summary(
        ev.metrics, comp[comp["a"] != "aligned"], ev.corruption, corpus="c", model="m", alpha=0.05
    )
    assert "not confirmed: without aligned there is no speaker-bootstrap CI" in text
    assert "within the speaker-bootstrap CI of aligned" not in text
    with pytest.raises(ValueError, match=r"`alpha` must lie in \(0, 1\)"):
        cue_use_summary(ev.metrics, comp, ev.corruption, corpus="c", model="m", alpha=5)


def test_cue_use_summary_never_says_no_effect_where_a_ci_excludes_0(iemocap):
    """A gain whose CI excludes 0 by far but whose Holm p misses alpha read "No
    detectable token effect. The model may ignore the token block"; a Spearman p above
    alpha read "No monotone trend" beside a far-end CI excluding 0."""
    ev = iemocap[2][0]
    comp = ev.comparisons.copy()
    sel = (comp["a"] == "aligned") & (comp["b"] == "audio_only")
    comp.loc[sel, COLS] = [0.217, 0.15, 0.28, 0.06, 100, 36]
    flat = ev.corruption.assign(rho=-0.24, rho_p=0.64)
    text = cue_use_summary(ev.metrics, comp, flat, corpus="c", model="m", alpha=0.05)
    assert (
        "**Inconclusive.** Aligned tokens are not significantly different from audio-only "
        "(its CI excludes 0 (above), but Holm p is not below alpha); this does not show that "
        "the model ignores the token block."
    ) in text
    assert "may ignore" not in text and "No monotone trend" not in text
    end = comp[(comp["a"] == "aligned") & (comp["b"] == "corrupt_p100")].iloc[0]
    assert end["ci_low"] > 0 or end["ci_high"] < 0  # fake_run: corruption costs UAR
    assert (
        "**Inconclusive.** Spearman's p is not below alpha: no trend over the runs, but the "
        "curve's far end differs from aligned (its CI excludes 0)."
    ) in text


def test_the_cis_are_named_by_the_evaluations_confidence_level(iemocap):
    """evaluation.confidence_level: 0.9 computed 90 % intervals that the tables, the
    summary and Figure 3 all called 95% CI."""
    from cueprobe.figures.corruption_curve import plot_corruption_curve

    metrics, comparisons, evs = iemocap
    ev = evs[0]
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05,
        confidence_level=0.9,
    )  # fmt: skip
    assert "90% CI" in text and "95%" not in text and "\x00" not in text
    t = tables.table3(metrics, comparisons, models=MODELS)
    md = tables.to_markdown(t, kind="III", title="T", confidence_level=0.9)
    tex = tables.to_latex(t, kind="III", title="T", label="l", confidence_level=0.9)
    assert "| 90% CI |" in md and "90\\% CI" in tex and "95%" not in md and "95\\%" not in tex
    fig = plot_corruption_curve(ev.corruption, ev.metrics, title="t", confidence_level=0.9)
    assert "mean ± 90% CI over seeds" in fig.axes[0].get_lines()[0].get_label()


def test_the_corrupt_family_is_judged_on_its_runs_with_p_above_0():
    """p = 0 asks the aligned prompts again: counting those runs diluted a mostly
    unparsed corruption family under the 'Not assessed' gate (a mutant passed)."""
    from cueprobe.summary import _unreadable

    m = pd.DataFrame(
        {"condition": [f"corrupt_p{p}_s{s}" for p in (0, 100) for s in range(3)],
         "kind": "corrupt", "p": [0.0] * 3 + [1.0] * 3,
         "unparsed_rate": [0.0] * 3 + [0.6] * 3, "n": 100, "n_error": 0}
    ).set_index("condition")  # fmt: skip
    assert _unreadable(m, ["corrupt"]).startswith("Not assessed: 60.0% of the corrupt answers")


def test_table3_prints_holm_p_as_holm_and_marks_4_speakers_not_5(iemocap):
    """Mutants that printed the raw p under "p (Holm)", or marked from 3 speakers down
    (4 give 35 distinct resamples), passed: the tests had used 2 and 6 speakers."""
    metrics, comparisons, _ = iemocap
    t = tables.table3(metrics, comparisons, models=MODELS)
    t.loc[t["label"] == "AF3", ["p", "p_holm", "n_speakers"]] = [0.01, 0.04, 4]
    t.loc[t["label"] == "Reference", "n_speakers"] = 5
    lines = tables.to_markdown(t, kind="III", title="t").splitlines()
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines if line.startswith("|")]
    header = cells[0]
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in cells[2:]}
    assert rows["AF3"]["p"] == tables.fmt_p(0.01)
    assert rows["AF3"]["p (Holm)"] == tables.fmt_p(0.04)
    rows = {k: list(v.values()) for k, v in rows.items()}
    assert rows["AF3"][3].endswith("‡") and "‡" not in "".join(rows["Reference"])


def test_few_speaker_cis_are_marked_in_table3_and_the_summary(iemocap):
    """A trained model scored on 2 held-out speakers (IEMOCAP session 5): CIs marked ‡."""
    metrics, comparisons, evs = iemocap
    with pytest.warns(DegenerateEffectWarning, match="2 speaker"):
        few = evaluation(
            "iemo", "reference", ["test"], 2, split_of=lambda i: "test" if i >= 4 * 24 else "train"
        )
    metrics = pd.concat([metrics[metrics["model"] == "af3"], few.metrics], ignore_index=True)
    comparisons = pd.concat(
        [comparisons[comparisons["model"] == "af3"], few.comparisons], ignore_index=True
    )
    t = tables.table3(metrics, comparisons, models=MODELS)
    assert t.set_index("label")["n_speakers"].to_dict() == {"AF3": 6, "Reference": 2}
    md = tables.to_markdown(t, kind="III", title="t")
    af3_row, ref_row = (line for line in md.splitlines() if line.startswith(("| AF3", "| Ref")))
    assert "‡" not in af3_row and ref_row.count("‡") == 3  # UAR⁻, UAR⁺ and Δ CIs
    assert "‡ Reference (test): 2 speaker(s), fewer than 5" in md
    tex = tables.to_latex(t, kind="III", title="t", label="l")
    assert tex.count("$^\\ddagger$") == 4
    assert "‡" not in tables.to_markdown(
        tables.table3(metrics[metrics["model"] == "af3"], comparisons, models=MODELS),
        kind="III", title="t",
    )  # fmt: skip
    # a model run without audio_only keeps its n, n_speakers and few-speaker mark
    no_minus = metrics[metrics["condition"] != "audio_only"]
    t = tables.table3(no_minus, comparisons, models=MODELS).set_index("label")
    assert t["n_speakers"].to_dict() == {"AF3": 6, "Reference": 2}
    assert t["n"].notna().all()

    text = cue_use_summary(
        few.metrics, few.comparisons, few.corruption, corpus="iemo", model="R", alpha=0.05
    )
    assert "> **Only 2 speaker(s).**" in text and "(3 distinct resamples)" in text
    assert "Only" not in cue_use_summary(
        evs[0].metrics, evs[0].comparisons, evs[0].corruption, corpus="c", model="m", alpha=0.05
    )


def _curve_run(rng, drop, n_speakers=10, per=30, acc=0.6, seeds=5):
    """aligned, audio_only and corrupt_p{0..100}_s{seed} predictions of one simulated model.

    One seed's corruption is nested in p (as :mod:`cueprobe.interventions` draws it); an
    utterance whose tokens are corrupted is right with probability ``acc - drop``.
    """
    n = n_speakers * per
    labels = np.tile(LABELS, n // len(LABELS) + 1)[:n]
    manifest = pd.DataFrame(
        {
            "utt_id": [f"u{i:04d}" for i in range(n)],
            "speaker": np.repeat([f"s{i}" for i in range(n_speakers)], per),
            "split": "test",
            "label": labels,
        }
    )
    wrong = np.roll(labels, 1)  # another class of the set

    def frame(right):
        return pd.DataFrame(
            {"utt_id": manifest["utt_id"], "pred": np.where(right, labels, wrong),
             "parse_status": "exact"}
        )  # fmt: skip

    aligned = rng.random(n) < acc
    preds = {"aligned": frame(aligned), "audio_only": frame(rng.random(n) < acc)}
    for s in range(seeds):
        u, redraw = rng.random(n), rng.random(n) < acc - drop
        for pct in (0, 25, 50, 75, 100):
            preds[f"corrupt_p{pct}_s{s}"] = frame(np.where(u < pct / 100, redraw, aligned))
    return manifest, preds


@pytest.mark.filterwarnings("ignore::cueprobe.metrics.DegenerateEffectWarning")
def test_degradation_verdict_needs_the_curve_end_not_only_spearman():
    """Spearman over (p, seed) runs treats them as independent; the verdict must not.

    No-effect population (corrupted-token accuracy = aligned in expectation): Spearman
    alone calls degradation far above alpha; the verdict (Spearman + the speaker-bootstrap
    CI of aligned vs corrupt_p100) stays near it, and still finds a real 10-point drop.
    """
    rng = np.random.default_rng(7)

    def rates(drop, runs):
        spearman_only = verdicts = 0
        for _ in range(runs):
            manifest, preds = _curve_run(rng, drop)
            ev = evaluate(
                preds, manifest, labels=LABELS, splits=["test"], n_resamples=200,
                confidence_level=0.95, rng=rng,
            )  # fmt: skip
            cur = ev.corruption.iloc[0]
            spearman_only += cur["rho"] < 0 and cur["rho_p"] < 0.05
            text = cue_use_summary(
                ev.metrics, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05
            )
            verdicts += "**Degradation.**" in text
        return spearman_only / runs, verdicts / runs

    # measured over 300 such runs: Spearman alone 0.21, the verdict 0.033
    spearman_only, verdict = rates(0.0, 60)
    assert spearman_only >= 0.1 and verdict <= 0.1
    _, power = rates(0.10, 15)
    assert power >= 0.6


def _curve(rho, p):
    return pd.DataFrame(
        {"split": "test", "p": [0.0, 1.0], "uar_mean": [0.6, 0.5], "rho": rho, "rho_p": p,
         "n_runs": 10}
    )  # fmt: skip


def _end(low, high, *, b=30, c=10, p_holm=0.001):
    return pd.DataFrame(
        [{"split": "test", "a": "aligned", "b": "corrupt_p100", "role": "primary",
          "delta": (low + high) / 2, "ci_low": low, "ci_high": high, "mcnemar_b": b,
          "mcnemar_c": c, "p": p_holm, "p_holm": p_holm}]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.02, 0.10, "**Degradation.**"),
        # the far end's CI excludes 0 against the falling trend: it was "confirmed"
        (-0.10, -0.02, "**Trend across runs only.**"),
        # a CI touching 0 (uar_difference snaps ties to exactly 0) does not exclude it
        (0.0, 0.10, "**Trend across runs only.**"),
    ],
)
def test_the_degradation_verdict_needs_the_far_end_on_the_trends_side(low, high, verdict):
    from cueprobe.summary import _degradation

    text = _degradation(_curve(-0.8, 0.001), _end(low, high), "test", 0.05)
    assert text.startswith(verdict), text
    if low < 0:
        assert "differs from aligned the other way" in text


def test_a_ci_touching_zero_is_no_verdict():
    """`uar_difference` snaps ties to exactly 0, so ci_low == 0.0 happens (few speakers,
    many tied resamples): it must read as a CI that includes 0."""
    from cueprobe.summary import _sensitivity

    row = _end(0.0, 0.1).iloc[0].to_dict() | {"a": "aligned", "b": "audio_only"}
    assert _sensitivity(row, 0.05).startswith("**Inconclusive.**")
    assert _sensitivity(row | {"ci_low": 1e-9}, 0.05).startswith("**Uses the cues.**")
    row = row | {"ci_low": -0.1, "ci_high": 0.0, "mcnemar_b": 10, "mcnemar_c": 30}
    assert _sensitivity(row, 0.05).startswith("**Inconclusive.**")


def _row(a, b, low, high, *, bb=30, c=10, p_holm=0.001):
    row = _end(low, high, b=bb, c=c, p_holm=p_holm).iloc[0].to_dict() | {"a": a, "b": b}
    return row | {"p": p_holm / 4}  # the raw p below its Holm p, as Holm makes it


UP, DOWN, NONE = (0.02, 0.10, 30, 10), (-0.10, -0.02, 10, 30), (-0.02, 0.10, 30, 10)


@pytest.mark.parametrize(
    ("name", "a", "b", "words"),
    [
        ("_sensitivity", "aligned", "audio_only",
         ["**Uses the cues.**", "**Aligned tokens hurt.**", "**Inconclusive.**"]),
        ("_fallback", "conflict", "audio_only",
         ["**Robust fallback.**", "**Over-reliance.**", "**Inconclusive.**"]),
        ("_format_prior", "shuffle", "audio_only",
         ["**Format prior.**", "**Misaligned tokens hurt.**", "**Inconclusive.**"]),
    ],
)  # fmt: skip
def test_each_verdict_reads_its_comparisons_direction_alpha_and_counts(name, a, b, words):
    """Only some directions of some verdicts were tested: a sign flipped in the format
    prior, a 'hurt' branch dropped, the configured alpha replaced by .05, or b = c read
    as agreeing counts all passed."""
    from cueprobe import summary

    verdict = getattr(summary, name)
    up, down, none = words
    for (low, high, bb, c), want in ((UP, up), (DOWN, down), (NONE, none)):
        row = _row(a, b, low, high, bb=bb, c=c)
        assert verdict(row, 0.05).startswith(want), (low, want)
        # the evidence a reader checks it by: delta, CI, p and Holm p, the counts
        assert (
            f"ΔUAR {tables.fmt_delta((low + high) / 2)}, \x00CI\x00 "
            f"{tables.fmt_ci(low, high)}, McNemar p = {tables.fmt_p(0.001 / 4)} (Holm 0.0010; "
            f"b = {bb}, c = {c})"
        ) in verdict(row, 0.05)
    row = _row(a, b, *UP[:2], p_holm=0.03)
    assert verdict(row, 0.05).startswith(up)
    assert verdict(row, 0.01).startswith(none)  # the configured alpha, not .05
    assert verdict(row | {"p_holm": 0.05}, 0.05).startswith(none)  # p = alpha: not below
    assert verdict(_row(a, b, *UP[:2], bb=20, c=20), 0.05).startswith(none)  # b = c
    assert verdict(_row(a, b, *DOWN[:2], bb=20, c=20), 0.05).startswith(none)
    # no verdict is read as "no effect" (the format prior's said "No detectable format
    # prior" beside a CI excluding 0): the page says the data cannot tell
    assert "does not show" in verdict(row, 0.01)


def test_alignment_names_what_aligned_beats_and_what_beats_it():
    from cueprobe.summary import _alignment

    metrics = pd.DataFrame({"kind": ["corrupt", "corrupt"], "p": [0.5, 1.0]})

    def comparisons(*sides):
        rows = [_row("aligned", b, lo, hi, bb=bb, c=c) for b, (lo, hi, bb, c) in sides]
        return pd.DataFrame(rows).assign(split="test", role="primary")

    cases = [
        ([UP, UP, UP], "**Content matters.** Aligned tokens beat every perturbation measured."),
        ([UP, NONE, UP], "**Content matters in part.** Aligned tokens beat conflict, "
                         "corrupt_p100 only."),
        ([UP, DOWN, NONE], "**Content matters in part.** Aligned tokens beat conflict only; "
                           "shuffle beat(s) them."),
        ([NONE, DOWN, NONE], "**Perturbed tokens do better.**"),
        ([NONE, NONE, NONE], "**Inconclusive.**"),
    ]  # fmt: skip
    for sides, want in cases:
        comp = comparisons(*zip(["conflict", "shuffle", "corrupt_p100"], sides, strict=True))
        assert _alignment(comp, metrics, "test", 0.05).startswith(want), want
    comp = comparisons(*zip(["conflict", "shuffle", "corrupt_p100"], [UP] * 3, strict=True))
    assert _alignment(comp.assign(p_holm=0.03), metrics, "test", 0.01).startswith(
        "**Inconclusive.**"
    )


@pytest.mark.parametrize(
    ("rho", "p", "low", "high", "alpha", "verdict"),
    [
        (0.8, 0.001, -0.10, -0.02, 0.05, "**Inverted.** UAR rises with corruption"),
        (0.8, 0.001, -0.02, 0.10, 0.05, "**Trend across runs only.** UAR rises with p"),
        (-0.8, 0.001, -0.02, 0.10, 0.05, "**Trend across runs only.** UAR falls with p"),
        (-0.8, 0.03, 0.02, 0.10, 0.01, "**Inconclusive.** Spearman's p is not below alpha"),
        (-0.8, 0.03, 0.02, 0.10, 0.05, "**Degradation.**"),
        (-0.8, 0.3, -0.10, -0.02, 0.05, "**Inconclusive.** Spearman's p is not below alpha"),
    ],
)
def test_the_degradation_verdict_reads_the_trends_sign_and_the_configured_alpha(
    rho, p, low, high, alpha, verdict
):
    from cueprobe.summary import _degradation

    end = _end(low, high, b=10 if high < 0 else 30, c=30 if high < 0 else 10)
    text = _degradation(_curve(rho, p), end, "test", alpha)
    assert text.startswith(verdict), text
    assert f"ΔUAR {tables.fmt_delta((low + high) / 2)}, \x00CI\x00 " in text
    assert f"Spearman ρ = {rho:+.2f}, p = {tables.fmt_p(p)} over 10 (p, seed) runs" in text
    if verdict.startswith("**Inconclusive"):  # the far end, significant on its own
        assert "but the curve's far end differs from aligned (its CI excludes 0)." in text
    else:
        assert "far end differs from aligned (its CI excludes 0)." not in text


@pytest.mark.filterwarnings("ignore::cueprobe.metrics.DegenerateEffectWarning")
def test_each_family_gate_withholds_exactly_the_verdicts_that_read_it():
    """The gates of conflict, shuffle and the corruption curve were untested (a level
    dropped from one passed), and the curve's far end was judged by the family's mean:
    its runs 85 % unparsed beside runs at 10 % still gave Alignment and Degradation
    verdicts from wrong-by-default answers."""
    manifest, preds = fake_run(seed=5)
    ev = evaluate(
        preds, manifest, labels=LABELS, splits=["test"], n_resamples=50,
        confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip

    def withheld(**rates):
        m = ev.metrics.copy()
        for prefix, share in rates.items():
            m.loc[m["condition"].str.startswith(prefix), "unparsed_rate"] = share
        text = cue_use_summary(m, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05)
        lines = [x for x in text.splitlines() if x.startswith("- **")]
        return [x.split("**")[1] for x in lines if "Not assessed" in x]

    assert withheld() == []
    assert withheld(conflict=0.8) == ["Alignment", "Robust fallback"]
    assert withheld(shuffle_s0=0.9, shuffle_s1=0.9) == ["Alignment", "Format prior"]
    assert withheld(shuffle_s0=0.9) == []  # the seeds' mean, 31 %
    assert withheld(corrupt_p100=0.85, corrupt_p50=0.10) == ["Alignment", "Monotone degradation"]
    assert withheld(corrupt_p50=0.85, corrupt_p100=0.10) == []  # the family's mean, 48 %
    assert withheld(corrupt_p0=0.9) == []  # p = 0 runs are aligned's answers


@pytest.mark.filterwarnings("ignore::cueprobe.metrics.DegenerateEffectWarning")
def test_the_summary_table_shows_each_conditions_own_numbers():
    """The WA column showing UAR (class-balanced fake runs make them equal), the CI's
    upper end showing UAR, the families' worst unparsed share showing their mean, the
    format-prior verdict reading audio-only vs shuffle, errors at exactly the tolerated
    share, or the few-speaker note at exactly 5 speakers all passed every test."""
    manifest, preds = fake_run(seed=5, n_speakers=5, per=40)  # 200 utterances
    ev = evaluate(
        preds, manifest, labels=LABELS, splits=["test"], n_resamples=50,
        confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    m = ev.metrics.copy()
    m["wa"] = m["uar"] + 0.1
    shuffles = m["kind"] == "shuffle"
    m.loc[shuffles, "unparsed_rate"] = [0.30, 0.02, 0.01]
    m.loc[m["condition"] == "aligned", "n_error"] = m["n"] // 100  # exactly 1 %: tolerated
    text = cue_use_summary(m, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05)
    rows = m.set_index("condition")
    for cond in ("audio_only", "aligned", "conflict"):
        r = rows.loc[cond]
        assert (
            f"| {cond} | {tables.fmt_uar(r.uar)} | {tables.fmt_ci(r.ci_low, r.ci_high)} | "
            f"{tables.fmt_uar(r.wa)} | {r.unparsed_rate:.1%} |"
        ) in text
    sub = m[shuffles]
    assert (
        f"| shuffle (3 runs, mean) | {tables.fmt_uar(sub.uar.mean())} | – | "
        f"{tables.fmt_uar(sub.wa.mean())} | ≤ 30.0% |"
    ) in text
    assert "Not assessed" not in text and "Only 5 speaker" not in text
    fmt = next(x for x in text.splitlines() if x.startswith("- **Format prior**"))
    shuffle = ev.comparisons.set_index(["a", "b"]).loc[("shuffle", "audio_only")]
    assert f"ΔUAR {tables.fmt_delta(shuffle['delta'])}," in fmt
    m.loc[m["condition"] == "aligned", "n_error"] += 1  # past 1 %
    text = cue_use_summary(m, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05)
    assert text.count("Not assessed: 1.5% of the aligned answers are errors") == 3
    m.loc[m["condition"] == "aligned", "n_error"] = 0
    m.loc[shuffles, "n_error"] = [60, 0, 0]  # the seeds' mean, 10 %, not their least
    text = cue_use_summary(m, ev.comparisons, ev.corruption, corpus="c", model="m", alpha=0.05)
    assert text.count("Not assessed: 10.0% of the shuffle answers are errors") == 2


def test_alarms_stay_with_their_split_and_fire_at_their_thresholds():
    """Errors and a constant audio-only label of dev were reported under test too (or
    lost), half the audio-only answers unparsed raised no alarm at `>`, one parsed
    answer counted as a constant label, and two absent classes counted as one."""
    from cueprobe.summary import answer_alarms

    metrics = pd.DataFrame(
        {"split": ["dev", "dev", "test", "test"],
         "condition": ["audio_only", "aligned", "audio_only", "aligned"],
         "unparsed_rate": [0.5, 0.0, 0.49, 0.0], "n": [40, 40, 40, 40],
         "n_error": [0, 5, 0, 0], "n_classes": [2, 2, 4, 4],
         "absent_classes": ["happy;sad", "happy;sad", "", ""]}
    )  # fmt: skip
    confusion = pd.DataFrame(
        {"split": ["dev", "dev", "test", "test", "test"], "condition": "audio_only",
         "true": ["angry", "neutral", "angry", "neutral", "sad"],
         "pred": ["neutral", "neutral", "neutral", "neutral", "sad"],
         "count": [12, 8, 1, 1, 1]}
    )  # fmt: skip
    alarms = answer_alarms(metrics, confusion)
    assert len(alarms["dev"]) == 4
    assert alarms["dev"][0].startswith("5 error answer(s)") and "aligned 5" in alarms["dev"][0]
    assert alarms["dev"][1].startswith("50.0% of the 40 audio-only answers are unparsed")
    assert "other 2 classes (chance 1/2), not comparable with a UAR over all 4" in alarms["dev"][2]
    assert alarms["dev"][3].startswith("every parsed audio-only answer is 'neutral' (20 ")
    assert alarms["test"] == []  # 49 % unparsed, 3 parsed answers of two labels
    one = confusion.assign(count=[0, 0, 1, 0, 0])  # a single parsed answer is no pattern
    assert answer_alarms(metrics.assign(n_error=0), one)["test"] == []


def test_table_rows_follow_the_config_and_its_groups(aibo):
    """Rows were sorted by label and every zero-shot model went under "Zero-shot models":
    the paper's Table II has qw2-audio, qw-omni, AF3, then a "Fine-tuned ALMs" group."""
    metrics, comparisons = aibo
    # the same runs under two more model names: config order z, a (not alphabetical)
    extra_m = [metrics[metrics["model"] == "af3"].assign(model=m) for m in ("zeta", "alpha")]
    extra_c = [
        comparisons[comparisons["model"] == "af3"].assign(model=m) for m in ("zeta", "alpha")
    ]
    metrics = pd.concat([metrics, *extra_m], ignore_index=True)
    comparisons = pd.concat([comparisons, *extra_c], ignore_index=True)
    # as the workflow passes them: in config order (not alphabetical)
    models = {
        "zeta": {"label": "zeta", "zero_shot": True},
        "af3": {"label": "AF3", "zero_shot": True},
        "alpha": {"label": "ft-A", "zero_shot": True, "group": "Fine-tuned ALMs"},
        "reference": {"label": "Reference", "zero_shot": False},
    }
    t = tables.table2(metrics, comparisons, models=models, literature=LITERATURE)
    assert t["label"].tolist()[:4] == ["zeta", "AF3", "ft-A", "Reference"]
    md = tables.to_markdown(t, kind="II", title="t")
    headings = [line.split("*")[1] for line in md.splitlines() if line.startswith("| *")]
    assert headings == [
        "Zero-shot models", "Fine-tuned ALMs", "Trained models (scored on held-out splits)",
        "Quoted references (not run here)",
    ]  # fmt: skip


def test_table_rows_keep_each_corpus_together_in_config_order():
    """Rows sorted by group and model rank alone interleaved the corpora."""
    evs = [evaluation(corpus, "af3", ["all"], seed) for corpus, seed in (("iemo", 1), ("aibo", 3))]
    metrics = pd.concat([e.metrics for e in evs])
    comparisons = pd.concat([e.comparisons for e in evs])
    metrics = pd.concat([metrics, metrics.assign(model="qwen")])
    comparisons = pd.concat([comparisons, comparisons.assign(model="qwen")])
    models = {"qwen": {"label": "Qwen", "zero_shot": True}, "af3": MODELS["af3"]}  # qwen first
    t = tables.table3(metrics, comparisons, models=models)
    assert [f"{c}/{label}" for c, label in zip(t["corpus"], t["label"], strict=True)] == [
        "aibo/Qwen", "aibo/AF3", "iemo/Qwen", "iemo/AF3",
    ]  # fmt: skip


# -- the report's captions -------------------------------------------------------------------


def _caption(name: str, *, wildcards: dict, config: dict, params: dict | None = None) -> str:
    """A report caption rendered as Snakemake renders it (Jinja2 over a ``snakemake``
    object), checked to be valid reStructuredText."""
    from types import SimpleNamespace

    import jinja2
    from docutils.core import publish_parts

    template = (REPO / "workflow/report" / name).read_text()
    text = jinja2.Template(template).render(
        snakemake=SimpleNamespace(
            wildcards=SimpleNamespace(**wildcards),
            params=SimpleNamespace(**(params or {})),
            config=config,
        )
    )
    parts = publish_parts(text, writer="html", settings_overrides={"report_level": 2})
    assert "system-message" not in parts["body"], parts["body"]
    return " ".join(text.split())


def test_report_captions_name_their_table_and_the_grid_they_show():
    """Both tables' files were captioned "Table 2"/"Table 3" (the files say II and III)
    with one text describing both; Figure 3's caption promised a t-interval over seeds
    that a one-seed grid does not draw."""
    config = {
        "seed": 0,
        "evaluation": {"confidence_level": 0.9, "n_resamples": 1000, "alpha": 0.05},
        "interventions": {"corrupt_seeds": [0, 1]},
    }
    two = _caption("tables.rst", wildcards={"table": "2"}, config=config)
    three = _caption("tables.rst", wildcards={"table": "3"}, config=config)
    assert two.startswith("Table II (CSV") and "McNemar" not in two and "‡" not in two
    assert three.startswith("Table III (CSV") and "90% CIs" in three and "rounded down" in three
    seeds = {"corpus": "c", "model": "m"}
    many = _caption("figure3.rst", wildcards=seeds, config=config)
    assert "mean and 90% t-interval over seeds" in many
    config["interventions"]["corrupt_seeds"] = [0]
    one = _caption("figure3.rst", wildcards=seeds, config=config)
    assert "one seed (no interval)" in one and "t-interval" not in one
    for name in ("figure1.rst", "figure2.rst", "summary.rst", "workflow.rst"):
        _caption(name, wildcards=seeds, config=config)
    # the rule passes gender_specific as JSON: "[]" printed "gender-specific for []"
    edges = {
        given: _caption(
            "tokens_edges.rst",
            wildcards=seeds,
            config=config,
            params={"n_bins": 5, "fit_on": "train", "gender_specific": given},
        )
        for given in ('["PITCH"]', "[]")
    }
    assert 'gender-specific for ["PITCH"]' in " ".join(edges['["PITCH"]'].split())
    assert "pooled over genders for every concept" in " ".join(edges["[]"].split())
    assert "gender-specific for" not in edges["[]"]
