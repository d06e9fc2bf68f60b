"""Corpus adapters: a corpus on disk -> (manifest, excluded) tables.

Adapters: ``iemocap``, ``aibo``, ``csv``, and ``demo-iemocap`` / ``demo-aibo``,
which first generate a tree in the official layout and then read it with the
real adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from cueprobe.corpora import aibo
from cueprobe.corpora import iemocap
from cueprobe.corpora.common import CorpusError
from cueprobe.corpora.common import exclusion_counts
from cueprobe.corpora.common import exclusion_detail
from cueprobe.corpora.common import exclusion_note
from cueprobe.corpora.csvsheet import read_csv_corpus
from cueprobe.corpora.csvsheet import sheet_summary

ADAPTERS = ("iemocap", "aibo", "csv", "demo-iemocap", "demo-aibo")

#: default label sets (with the synonyms the answer parser accepts) per adapter
DEFAULT_LABELS: dict[str, dict[str, list[str]]] = {
    "iemocap": iemocap.LABELS,
    "demo-iemocap": iemocap.LABELS,
    "aibo": aibo.LABELS,
    "demo-aibo": aibo.LABELS,
}

#: splits each kind of model is scored on, per adapter (the paper's protocol)
DEFAULT_EVAL_SPLITS: dict[str, dict[str, list[str]]] = {
    "iemocap": {"zero_shot": ["all"], "trained": ["test"]},
    "aibo": {"zero_shot": ["dev", "test"], "trained": ["dev", "test"]},
    "csv": {"zero_shot": ["all"], "trained": ["test"]},
}
DEFAULT_EVAL_SPLITS["demo-iemocap"] = DEFAULT_EVAL_SPLITS["iemocap"]
DEFAULT_EVAL_SPLITS["demo-aibo"] = DEFAULT_EVAL_SPLITS["aibo"]

#: the splits each adapter's manifest has (a csv sheet: those it names)
ADAPTER_SPLITS = {"iemocap": ("test", "train"), "aibo": ("dev", "test", "train")}

__all__ = [
    "ADAPTERS",
    "CorpusError",
    "build_manifest",
    "corpus_labels",
    "corpus_splits",
    "eval_splits",
    "exclusion_counts",
    "exclusion_note",
]


def corpus_labels(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """Label set (keys, in order) and answer synonyms of a configured corpus."""
    if cfg.get("labels"):
        return {k: list(v) for k, v in cfg["labels"].items()}
    if cfg["adapter"] == "csv":
        raise CorpusError("a csv corpus needs `labels:` in its config (the class set and synonyms)")
    return {k: list(v) for k, v in DEFAULT_LABELS[cfg["adapter"]].items()}


def corpus_splits(cfg: Mapping[str, Any]) -> tuple[set[str], str] | None:
    """The splits a corpus' manifest will have, as far as planning can tell, and what says
    so; None when unknown (a csv sheet that is absent or unreadable: its job names why).

    Examples
    --------
    >>> splits, what = corpus_splits({"adapter": "demo-aibo", "dev_speakers": []})
    >>> sorted(splits), what
    (['test', 'train'], 'the aibo adapter with dev_speakers: []')
    """
    adapter = cfg["adapter"].removeprefix("demo-")
    if adapter == "csv":
        try:
            return set(sheet_summary(Path(cfg["root"])).splits), f"the sheet {cfg['root']}"
        except (OSError, CorpusError):
            return None
    if adapter == "aibo" and cfg.get("dev_speakers") == []:
        return {"train", "test"}, "the aibo adapter with dev_speakers: []"
    return set(ADAPTER_SPLITS[adapter]), f"the {adapter} adapter"


def eval_splits(cfg: Mapping[str, Any], *, zero_shot: bool) -> list[str]:
    """Splits a model is scored on: zero-shot models vs models trained on ``train``.

    A kind the corpus' ``eval_splits`` leaves out gets the adapter's default (a config
    that named only ``zero_shot`` failed planning with a KeyError for a trained model).

    Examples
    --------
    >>> aibo = {"adapter": "aibo", "eval_splits": {"zero_shot": ["test"]}}
    >>> eval_splits(aibo, zero_shot=True), eval_splits(aibo, zero_shot=False)
    (['test'], ['dev', 'test'])
    """
    table = DEFAULT_EVAL_SPLITS[cfg["adapter"]] | (cfg.get("eval_splits") or {})
    return list(table["zero_shot" if zero_shot else "trained"])


def build_manifest(
    adapter: str,
    root: Path,
    *,
    labels: Mapping[str, Any] | None = None,
    dev_speakers: list[str] | None = None,
    n_dev_speakers: int = 2,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a corpus with the named adapter; return ``(manifest, excluded)``."""
    adapter = adapter.removeprefix("demo-")
    if adapter == "iemocap":
        manifest, excluded = iemocap.read_iemocap(Path(root))
    elif adapter == "aibo":
        manifest, excluded = aibo.read_aibo(
            Path(root), dev_speakers=dev_speakers, n_dev_speakers=n_dev_speakers
        )
    elif adapter == "csv":
        manifest, excluded = read_csv_corpus(Path(root), labels=labels)
    else:
        raise CorpusError(f"unknown adapter {adapter!r}; one of {ADAPTERS}")
    if labels is not None and adapter != "csv":
        # the configured names, matched in any case as a csv sheet's are (`Angry` is the
        # adapter's `angry`), and a subset of the adapter's classes (3-way IEMOCAP): the
        # others are left out, each with its reason
        canonical = {str(label).lower(): label for label in labels}
        named = manifest["label"].astype(str).str.lower().map(canonical)
        out = named.isna()
        manifest = manifest.assign(label=named.where(~out, manifest["label"]))
        if out.any():
            left = manifest[out]
            excluded = pd.concat(
                [
                    excluded,
                    pd.DataFrame(
                        {
                            "utt_id": left["utt_id"],
                            "path": left["path"],
                            "reason": "label_not_in_set: " + left["label"].astype(str),
                        }
                    ),
                ],
                ignore_index=True,
            ).sort_values("utt_id", ignore_index=True)
            manifest = manifest[~out].reset_index(drop=True)
    if manifest.empty:  # else it fails jobs later, for want of data, far from the cause
        why = exclusion_detail(excluded, top=3) or "none read"
        first = f"; the first: {excluded['reason'].iloc[0]}" if len(excluded) else ""
        missing = excluded.loc[excluded["reason"].str.startswith("missing_audio"), "path"]
        if len(missing):  # where it looked: a sheet's paths are read from its folder
            first += f"; the first missing file: {missing.iloc[0]}" + (
                f" (a sheet's relative paths are read from its folder, {Path(root).parent})"
                if adapter == "csv"
                else ""
            )
        raise CorpusError(
            f"no utterance of {root} is kept ({len(excluded)} left out: {why}{first})."
        )
    if labels is not None:
        absent = [label for label in labels if label not in set(manifest["label"])]
        if absent:  # a class without rows: its recall is undefined, UAR over the others
            unmatched = (
                excluded["reason"]
                .str.extract(r"^label_not_in_set: (.*?)(?: \(line \d+\))?$", expand=False)
                .dropna()
                .value_counts()
            )
            other = excluded[~excluded["reason"].str.startswith("label_not_in_set")]
            hint = (
                ", ".join(f"{label!r} ({n})" for label, n in unmatched.head(8).items())
                if len(unmatched)
                else "none"
            )
            raise CorpusError(
                f"{root}: no kept utterance has label(s) {absent} of the configured set "
                f"{list(labels)} (the corpus' `labels:`); labels left out as not in the set: "
                f"{hint}. Name the classes as the corpus does, or leave the absent ones out."
                + (
                    f" Left out for other reasons: {exclusion_detail(other, top=3)} (their "
                    "labels may be the absent ones)."
                    if len(other)
                    else ""
                )
            )
    return manifest, excluded
