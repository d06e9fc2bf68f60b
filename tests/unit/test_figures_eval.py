"""Figures 2-3: content, error messages and byte-identical regeneration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cueprobe.figures import figure_bytes
from cueprobe.figures import savefig_kwargs
from cueprobe.figures.confusions import figure2_panels
from cueprobe.figures.confusions import plot_confusions
from cueprobe.figures.confusions import pooled_rates
from cueprobe.figures.corruption_curve import plot_corruption_curve
from cueprobe.metrics import OTHER
from cueprobe.stats import evaluate
from cueprobe.tables import fmt_uar
from tests.unit.test_stats import LABELS
from tests.unit.test_stats import fake_run


@pytest.fixture(scope="module")
def ev():
    manifest, preds = fake_run(seed=5, split_of=lambda i: "dev" if i < 72 else "test")
    return evaluate(
        preds, manifest, labels=LABELS, splits=["dev", "test"], n_resamples=100,
        confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip


def render(fig, fmt):
    return figure_bytes(fig, fmt)


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_figures_regenerate_byte_identically(ev, fmt):
    a = render(plot_confusions(ev.confusion, ev.metrics, title="t"), fmt)
    b = render(plot_confusions(ev.confusion.copy(), ev.metrics.copy(), title="t"), fmt)
    assert a == b
    c = render(plot_corruption_curve(ev.corruption, ev.metrics, title="t"), fmt)
    d = render(plot_corruption_curve(ev.corruption.copy(), ev.metrics.copy(), title="t"), fmt)
    assert c == d
    if fmt == "pdf":
        assert b"CreationDate" not in a and b"Matplotlib" not in a
    if fmt == "png":
        assert b"Software" not in a


def test_confusion_panels_and_unlabelled_small_cells(ev):
    fig = plot_confusions(ev.confusion, ev.metrics, title="t")
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == 8  # 2 splits x (aligned, shuffle, conflict, corrupt p=1)
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "aligned" and titles[3] == "corrupt p=1"
    uar = [t.get_text() for t in axes[0].texts if t.get_text().startswith("UAR ")]
    assert uar == [
        f"UAR {fmt_uar(ev.metrics.set_index(['split', 'condition']).uar['dev', 'aligned'])} (dev)"
    ]
    rates = pooled_rates(ev.confusion, "dev", ["aligned"]).reindex(index=LABELS)
    texts = [t.get_text() for t in axes[0].texts if not t.get_text().startswith("UAR ")]
    values = rates.to_numpy().ravel()
    assert len(texts) == int((values >= 0.01).sum())
    np.testing.assert_allclose(rates.sum(axis=1), 1.0)


def test_figure_2_is_no_wider_than_a_page(ev):
    """Four panels were 8.4 in wide: a figure* shrunk to 7.16 in printed the 6.5 pt cell
    values at 5.5 pt."""
    from cueprobe.figures import PAGE_WIDTH_IN

    fig = plot_confusions(ev.confusion, ev.metrics, title="t")
    assert fig.get_figwidth() <= PAGE_WIDTH_IN
    # unless its classes need more: 8 classes + other at 1.59 in a panel ran the cell
    # values together (".1916131310")
    from cueprobe.metrics import OTHER

    twin = ev.confusion.copy()
    for col in ("true", "pred"):
        twin[col] = twin[col].where(twin[col] == OTHER, twin[col] + "_2")
    fig = plot_confusions(pd.concat([ev.confusion, twin]), ev.metrics, title="t")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"][:4]
    assert all(len(ax.get_xticks()) == 9 for ax in panels)
    assert fig.get_figwidth() >= 4 * 0.21 * 9


def test_figure_3_says_when_aligned_and_audio_only_lines_coincide(ev):
    """Equal UARs drew the dashed line on the dotted one: in greyscale one line."""
    metrics = ev.metrics.copy()
    rows = metrics["condition"] == "aligned"
    audio = metrics[metrics["condition"] == "audio_only"].set_index("split")["uar"]
    metrics.loc[rows, "uar"] = metrics.loc[rows, "split"].map(audio).to_numpy()
    fig = plot_corruption_curve(ev.corruption, metrics, title="t")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(lab.startswith("aligned (") and lab.endswith(", = audio-only") for lab in labels)
    fig = plot_corruption_curve(ev.corruption, ev.metrics, title="t")
    assert not any("= audio-only" in line.get_label() for line in fig.axes[0].get_lines())


def test_pooled_seeds_equal_the_mean_of_per_seed_rates(ev):
    seeds = [f"shuffle_s{s}" for s in range(3)]
    pooled = pooled_rates(ev.confusion, "test", seeds)
    mean = sum(pooled_rates(ev.confusion, "test", [s]) for s in seeds) / 3
    np.testing.assert_allclose(pooled.to_numpy(), mean.to_numpy(), atol=1e-12)


def test_corruption_curve_has_reference_lines(ev):
    fig = plot_corruption_curve(ev.corruption, ev.metrics, title="t")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(lab.startswith("aligned (") for lab in labels)
    assert any(lab.startswith("audio-only (") for lab in labels)
    assert any("Spearman ρ" in lab for lab in labels)


def test_figure_2_takes_the_grids_most_corrupted_level_and_3_says_when_it_has_no_ci(ev):
    """A grid without p = 1 lost its corruption panel silently; a one-seed curve had a
    legend promising a CI that was not drawn; a class absent from a split was a row of
    zeros under "rows sum to 1"."""
    c = ev.confusion
    absent = (c["split"] == "dev") & (c["true"] == LABELS[0])
    conf = c[~c["condition"].str.startswith("corrupt_p100") & ~absent]
    metrics = ev.metrics[~ev.metrics["condition"].str.startswith("corrupt_p100")]
    fig = plot_confusions(conf, metrics, title="t")
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes[3].get_title() == "corrupt p=0.5"
    image = axes[0].get_images()[0].get_array()
    blank = image.mask.all(axis=1)  # the absent class's row, and no other cell
    assert blank.sum() == 1 and not image.mask[~blank].any()
    one_seed = ev.corruption.assign(n_seeds=1, ci_low=np.nan, ci_high=np.nan)
    fig = plot_corruption_curve(one_seed, ev.metrics, title="t")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[0].startswith("corrupt(p), one seed (no CI)")
    fig = plot_corruption_curve(ev.corruption, ev.metrics, title="t")
    assert fig.axes[0].get_lines()[0].get_label().startswith("corrupt(p), mean ± 95% CI")


def test_figure_errors(ev):
    only = ev.metrics[ev.metrics["condition"] == "audio_only"]
    with pytest.raises(ValueError, match="none of the Figure 2 conditions"):
        plot_confusions(ev.confusion, only, title="t")
    with pytest.raises(ValueError, match="the corruption table is empty"):
        plot_corruption_curve(ev.corruption.iloc[0:0], ev.metrics, title="t")
    with pytest.raises(ValueError, match="unknown figure format 'gif'"):
        savefig_kwargs("gif")
    with pytest.raises(ValueError, match=r"no confusion counts for \['nope'\] on split 'dev'"):
        pooled_rates(ev.confusion, "dev", ["nope"])


def test_every_format_of_a_figure_gets_the_first_save_layout(ev, tmp_path):
    """Saved twice, a constrained-layout figure moves (a second layout pass); the CLI
    keeps the first save's layout, so a figure's files agree with each other."""
    from cueprobe.cli import main

    argv = _plot_evaluation_argv(ev, tmp_path)
    outs = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.pdf"]
    assert main([*argv, "--confusions-out", *map(str, outs)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    fig = plot_confusions(ev.confusion, ev.metrics, title="t")
    assert render(fig, "png") == render(fig, "png")


@pytest.mark.parametrize("plot", ["confusions", "curve"])
def test_each_format_of_a_figure_is_drawn_once(ev, tmp_path, monkeypatch, plot):
    """savefig draws a figure with a layout engine twice (a silent draw to lay it out,
    then the real one), and a placeholder engine left by set_layout_engine("none") still
    triggers the silent draw: save_figure lays out once and draws each format once, to
    the same files under a user's matplotlibrc that asks for a layout engine (savefig
    restored it after each format) or another default format (the layout's renderer)."""
    import matplotlib
    from matplotlib.figure import Figure

    from cueprobe.figures import save_figure

    def plot_and_save(folder, rc):
        fig = (
            plot_confusions(ev.confusion, ev.metrics, title="t")
            if plot == "confusions"
            else plot_corruption_curve(ev.corruption, ev.metrics, title="t")
        )
        assert fig.get_layout_engine() is not None
        folder.mkdir()
        outs = [folder / "f.png", folder / "f.pdf", folder / "f.svg"]
        with matplotlib.rc_context(rc):
            save_figure(fig, outs)
        assert fig.get_layout_engine() is None
        return [out.read_bytes() for out in outs]

    draws = []
    real_draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda fig, r: draws.append(fig) or real_draw(fig, r))
    files = plot_and_save(tmp_path / "default", {})
    assert len(draws) == 3
    user_rc = {"figure.autolayout": True, "savefig.format": "pdf"}
    assert plot_and_save(tmp_path / "user", user_rc) == files
    assert len(draws) == 6


def _plot_evaluation_argv(ev, tmp_path):
    from cueprobe import io as cio

    ids = {"corpus": "c", "model": "m"}
    for frame, kind in ((ev.metrics, "metrics"), (ev.confusion, "confusion"),
                        (ev.corruption, "corruption")):  # fmt: skip
        cio.write_table(frame.assign(**ids), tmp_path / f"{kind}.parquet", kind)
    argv = ["plot-evaluation", "--metrics", str(tmp_path / "metrics.parquet")]
    argv += ["--confusion", str(tmp_path / "confusion.parquet"), "--title", "t"]
    return argv


def test_plot_evaluation_draws_figure_3_only_when_asked(ev, tmp_path, capsys):
    """One job draws Figures 2 and 3 of a (corpus, model); without corruption files
    (a grid with no corruption probabilities) it draws Figure 2 alone."""
    from cueprobe.cli import main

    argv = _plot_evaluation_argv(ev, tmp_path)
    fig2, fig3 = tmp_path / "fig2.png", [tmp_path / "fig3.png", tmp_path / "fig3.pdf"]
    assert main([*argv, "--confusions-out", str(fig2)]) == 0
    assert fig2.exists() and not any(f.exists() for f in fig3)
    curve = ["--corruption", str(tmp_path / "corruption.parquet")]
    assert main([*argv, *curve, "--confusions-out", str(fig2),
                 "--corruption-curve-out", *map(str, fig3)]) == 0  # fmt: skip
    assert fig3[0].read_bytes()[:4] == b"\x89PNG" and fig3[1].read_bytes()[:4] == b"%PDF"
    expected = render(plot_corruption_curve(ev.corruption, ev.metrics, title="t"), "png")
    assert fig3[0].read_bytes() == expected
    assert main([*argv, "--confusions-out", str(fig2), "--corruption-curve-out", str(fig3[0])]) == 1
    assert "--corruption-curve-out needs --corruption" in capsys.readouterr().err


def test_figure_modules_import_neither_scipy_nor_pyplot():
    """A figure job pays for what it draws: SciPy cost each one 0.14 s of start-up (it
    came in through the statistics module), pyplot brings global state."""
    import subprocess
    import sys

    code = (
        "import sys, cueprobe.cli.evaluation, cueprobe.cli.tokens, cueprobe.figures.confusions,"
        " cueprobe.figures.corruption_curve, cueprobe.figures.token_distribution;"
        "print(sorted(m for m in ('scipy', 'matplotlib.pyplot') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _embedded_subsets(pdf: bytes) -> int:
    """Embedded font programs (Type 42: one per subset of a font)."""
    return pdf.count(b"/FontFile2")


def test_a_greek_letter_adds_no_second_font_subset_to_a_pdf():
    """Under pdf.fonttype 42 alone, matplotlib sized PDF subsets by ps.fonttype (3: 256
    glyphs), so "ρ" in Figure 3's legend embedded DejaVu Sans twice (~0.2 s a PDF)."""
    from matplotlib.figure import Figure

    def pdf(title):
        fig = Figure()
        fig.subplots().set_title(title)
        return render(fig, "pdf")

    assert _embedded_subsets(pdf("Spearman rho = -0.9")) == 1
    assert _embedded_subsets(pdf("Spearman ρ = −0.9, Δ ‡")) == 1


def test_a_ligature_adds_no_second_font_subset_to_a_pdf(ev):
    """A ligature glyph (fl, ffl) has no character code, so matplotlib put it in a second
    subset of the font (~0.15 s a PDF): Figure 2's "shuffle" and "conflict" panels did,
    and so would a model named "*-flamingo-*"."""
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().set_title("audio-flamingo-3: shuffle, conflict")
    assert _embedded_subsets(render(fig, "pdf")) == 1
    fig2 = plot_confusions(ev.confusion, ev.metrics, title="audio-flamingo-3 on c")
    assert _embedded_subsets(render(fig2, "pdf")) == 1


def test_figure_3_draws_each_splits_own_curve_band_and_lines(ev):
    """The band as mean +- SD, the line at the CI's low end, the aligned line at the
    audio-only UAR, the second panel drawing the first split's curve, the run count or
    rho's sign wrong in the legend: all passed (a mutation review)."""
    fig = plot_corruption_curve(ev.corruption, ev.metrics, title="t")
    assert len(fig.axes) == 2
    for ax, split in zip(fig.axes, ["dev", "test"], strict=True):
        cur = ev.corruption[ev.corruption["split"] == split].sort_values("p")
        m = ev.metrics[ev.metrics["split"] == split].set_index("condition")["uar"]
        assert ax.get_title() == f"split: {split}"
        curve, aligned, audio = ax.get_lines()
        np.testing.assert_allclose(curve.get_xdata(), cur["p"])
        np.testing.assert_allclose(curve.get_ydata(), cur["uar_mean"])
        (band,) = ax.collections
        ys = band.get_paths()[0].vertices[:, 1]
        np.testing.assert_allclose(sorted(set(np.round(ys, 9))), sorted(
            set(np.round(np.r_[cur["ci_low"], cur["ci_high"]], 9))
        ))  # fmt: skip
        assert aligned.get_ydata()[0] == m["aligned"] and audio.get_ydata()[0] == m["audio_only"]
        assert audio.get_label() == f"audio-only ({m['audio_only']:.3f})"
        rho, n = cur["rho"].iloc[0], int(cur["n_runs"].iloc[0])
        assert f"Spearman ρ = {rho:+.2f}, p = " in curve.get_label() and rho < 0
        assert f"({n} runs)" in curve.get_label() and n == 9


def test_figure_2_pools_each_panels_seeds_and_names_each_split(ev):
    """A seed family's panel drawn from its first seed (image and UAR), every annotation
    naming the first split, a grid of p = 0 only given a corrupt panel, or the `other`
    column shown for answers outside the panels' conditions: all passed (a mutation
    review)."""
    fig = plot_confusions(ev.confusion, ev.metrics, title="t")
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    m = ev.metrics.set_index(["split", "condition"])["uar"]
    seeds = [f"shuffle_s{s}" for s in range(3)]
    for row, split in enumerate(["dev", "test"]):
        ax = axes[4 * row + 1]
        assert ax.get_title() == "shuffle"
        (image,) = ax.get_images()
        want = pooled_rates(ev.confusion, split, seeds).reindex(
            index=LABELS, columns=[*LABELS, OTHER]
        )
        np.testing.assert_allclose(np.asarray(image.get_array()), want.to_numpy())
        uar = fmt_uar(np.mean([m[split, s] for s in seeds]))
        assert f"UAR {uar} ({split})" in [t.get_text() for t in ax.texts]
    assert figure2_panels(["aligned", "corrupt_p0"], [0.0, 0.0]) == [("aligned", "aligned")]
    # an answer outside the label set in audio_only (no panel of its own): no `other` column
    extra = pd.DataFrame(
        [{"split": "dev", "condition": "audio_only", "true": "sad", "pred": OTHER, "count": 3,
          "rate": 0.1}]
    )  # fmt: skip
    confusion = pd.concat([ev.confusion[ev.confusion["pred"] != OTHER], extra])
    fig = plot_confusions(confusion, ev.metrics, title="t")
    (image,) = fig.axes[0].get_images()
    assert np.asarray(image.get_array()).shape == (len(LABELS), len(LABELS))
