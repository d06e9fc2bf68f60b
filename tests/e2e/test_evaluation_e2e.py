"""The evaluation stage in the real demo run: tables, figures, summary, report."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cueprobe import io
from cueprobe.summary import cue_use_summary
from tests.e2e.conftest import snakemake

pytestmark = pytest.mark.slow

MODEL = "reference"
FIGURES = ("confusions", "corruption_curve")


def test_evaluation_tables_are_valid_and_complete(demo_run):
    for corpus, splits in (("demo_iemocap", {"test"}), ("demo_aibo", {"dev", "test"})):
        base = demo_run / f"results/{corpus}/evaluation/{MODEL}"
        metrics = io.read_table(base / "metrics.parquet", "metrics")
        manifest = io.read_table(demo_run / f"results/{corpus}/manifest.parquet", "manifest")
        assert set(metrics["split"]) == splits
        for split, n in metrics.groupby("split")["n"].first().items():
            assert n == (manifest["split"] == split).sum()  # no utterance lost
        assert (
            metrics["ci_low"].le(metrics["uar"]).all()
            and metrics["uar"].le(metrics["ci_high"]).all()
        )
        assert (metrics["n_resamples"] == 500).all()
        comparisons = io.read_table(base / "comparisons.parquet", "comparisons")
        primary = comparisons[comparisons["role"] == "primary"]
        assert primary["p_holm"].ge(primary["p"]).all()
        # corrupt_p0 equals aligned by construction: its UAR is aligned's
        by = metrics.set_index(["split", "condition"])["uar"]
        for split in splits:
            p0 = [c for c in metrics["condition"] if c.startswith("corrupt_p0_")]
            assert all(by[(split, c)] == pytest.approx(by[(split, "aligned")]) for c in p0)
        corruption = io.read_table(base / "corruption.parquet", "corruption")
        assert set(corruption["split"]) == splits
        summary = (base / "summary.md").read_text()
        assert summary.startswith(f"# Cue use of {MODEL} on {corpus}")
        # written by the evaluation job from its tables in memory: what the saved tables give
        assert summary == cue_use_summary(
            metrics, comparisons, corruption, corpus=corpus, model=MODEL, alpha=0.05
        )
        for ext in ("png", "pdf"):
            for fig in FIGURES:
                assert (
                    demo_run / f"results/figures/{corpus}/{MODEL}.{fig}.{ext}"
                ).stat().st_size > 0


def test_tables_two_and_three(demo_run):
    t2 = pd.read_csv(demo_run / "results/tables/table2.csv")
    t3 = pd.read_csv(demo_run / "results/tables/table3.csv")
    assert t2["corpus"].tolist() == ["demo_aibo"] and t3["corpus"].tolist() == ["demo_iemocap"]
    assert t3.loc[0, "split"] == "test"  # the trained reference is scored on held-out data
    assert not t2[["dev_uar_minus", "test_uar_plus"]].isna().any().any()
    assert "\\begin{tabular}" in (demo_run / "results/tables/table3.tex").read_text()
    # the title names the corpora it reports, as the paper's do
    assert (
        (demo_run / "results/tables/table2.md").read_text().startswith("### Table II. demo_aibo: ")
    )


def test_tables_and_figures_regenerate_byte_identically(demo_copy):
    outputs = [f"results/tables/table{t}.{ext}" for t in (2, 3) for ext in ("csv", "md", "tex")]
    outputs += [
        f"results/figures/{corpus}/{MODEL}.{fig}.{ext}"
        for corpus in ("demo_iemocap", "demo_aibo")
        for fig in FIGURES
        for ext in ("png", "pdf")
    ]
    outputs += [
        f"results/{c}/evaluation/{MODEL}/{f}"
        for c in ("demo_aibo",)
        for f in ("metrics.parquet", "summary.md")
    ]
    before = {p: (demo_copy / p).read_bytes() for p in outputs}
    shutil.rmtree(demo_copy / "results/tables")
    shutil.rmtree(demo_copy / "results/figures/demo_aibo")
    snakemake(demo_copy, "--cores", "2", "--forcerun", "evaluate_model", "--", *outputs)
    changed = [p for p in outputs if (demo_copy / p).read_bytes() != before[p]]
    assert not changed


def test_report_builds(demo_copy):
    snakemake(demo_copy, "--cores", "1", "--report", "results/report.html")
    html = (demo_copy / "results/report.html").read_text(errors="replace")
    assert len(html) > 10_000
    # the paper's results are in the report, under their categories
    assert "Evaluation" in html and "Concept tokens" in html
