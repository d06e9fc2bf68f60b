"""Any corpus from a CSV sheet: ``path,label,speaker[,gender,split,utt_id]``.

Relative paths are resolved against the CSV's folder. ``utt_id`` defaults to the
path as written, without its suffix: relative to that folder, or absolute (then moving
the corpus changes every id, and what is keyed by it: give ``utt_id`` or relative paths).
Column names and split values are read in any case (``Split``: ``Train``). ``split`` defaults to ``test``
(zero-shot evaluation of everything). A label names a class of the configured label
set in any case (``Angry`` is ``angry``); any other label is excluded with its reason
and sheet line, never silently dropped. ``gender`` is written ``F``/``M``
whatever the sheet's spelling (:data:`GENDERS`: ``female``, ``Male``, ``w``...), since
gender-specific token bins are fitted for ``F`` and ``M``; empty is ``unknown``, and any
other value is kept as written (binned with the pooled edges).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from cueprobe.corpora.common import CorpusError
from cueprobe.corpora.common import split_kept

REQUIRED = ("path", "label", "speaker")
#: the columns the adapter reads; a header names them in any case (``Split`` is split)
COLUMNS = (*REQUIRED, "gender", "split", "session", "utt_id")
SPLITS = ("train", "dev", "test")
#: spellings of the two gender groups (case-insensitive) -> the manifest's value
GENDERS = {
    **dict.fromkeys(("f", "female", "w", "woman"), "F"),
    **dict.fromkeys(("m", "male", "man"), "M"),
}


def normalise_gender(value: str) -> str:
    """``F``/``M`` for the spellings in :data:`GENDERS`; ``unknown`` if empty; else as is.

    Examples
    --------
    >>> [normalise_gender(g) for g in ("Female", "m", " W ", "", "child")]
    ['F', 'M', 'F', 'unknown', 'child']
    """
    value = value.strip()
    return GENDERS.get(value.lower(), value) if value else "unknown"


def _read_sheet(sheet: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line number, row)`` of every non-blank line, each cell stripped.

    A row with more non-empty fields than the header is an error (an unquoted comma, an
    undeclared column); empty trailing fields (a spreadsheet's trailing commas) are
    dropped and missing ones read as empty. The adapter's columns (:data:`COLUMNS`) are
    named in any case; other columns are kept as written (and not read).
    """
    try:
        return _read_rows(sheet)
    except UnicodeDecodeError as err:
        raise CorpusError(f"{sheet}: not UTF-8 text ({err}); save the sheet as UTF-8") from None


def _read_rows(sheet: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    known = {c.lower(): c for c in COLUMNS}
    with open(sheet, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        # `Split` would otherwise be an unknown column, ignored: every row then `test`
        header = [known.get(h.strip().lower(), h.strip()) for h in next(reader, [])]
        while header and not header[-1]:
            header.pop()
        if not header:
            raise CorpusError(f"{sheet}: no header line (want {', '.join(REQUIRED)}, ...)")
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise CorpusError(f"{sheet}: column(s) {twice} appear more than once in the header")
        rows = []
        for cells in reader:
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if any(cells[len(header) :]):
                raise CorpusError(
                    f"{sheet}:{reader.line_num}: {len(cells)} fields for the header's "
                    f"{len(header)} {header}; quote a cell that holds a comma"
                )
            cells = cells[: len(header)] + [""] * (len(header) - len(cells))
            rows.append((reader.line_num, dict(zip(header, cells, strict=True))))
    return header, rows


def _split(rec: dict[str, str]) -> str:
    """A row's split, in lower case (``Train`` is train); no split: ``test``."""
    return (rec.get("split") or "test").lower()


@dataclasses.dataclass(frozen=True)
class SheetSummary:
    """What planning needs of a sheet: its splits, how many rows have each gender, and
    the classes (lower case) of its train rows."""

    splits: frozenset[str]
    genders: dict[str, int]
    train_labels: frozenset[str] = frozenset()


def sheet_summary(sheet: Path) -> SheetSummary:
    """Read a sheet once for the checks made when the workflow is planned.

    Raises :class:`CorpusError` for a sheet without the required columns (a sheet saved
    with ``;`` between fields has one column named ``path;label;speaker``), as the
    manifest job would; the result is cached per file version.

    Examples
    --------
    >>> import tempfile
    >>> sheet = Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = sheet.write_text("path,label,speaker,Split,Gender\\na.wav,sad,s1,Train,female\\n"
    ...                      "b.wav,sad,s2,dev,\\n")
    >>> summary = sheet_summary(sheet)
    >>> sorted(summary.splits), summary.genders
    (['dev', 'train'], {'F': 1, 'unknown': 1})
    """
    stat = Path(sheet).stat()
    return _sheet_summary(str(sheet), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _sheet_summary(sheet: str, mtime_ns: int, size: int) -> SheetSummary:
    header, records = _read_sheet(Path(sheet))
    _check_columns(Path(sheet), header, records)
    genders: dict[str, int] = {}
    for line, rec in records:
        _check_split(Path(sheet), line, _split(rec))
        gender = normalise_gender(rec.get("gender", ""))
        genders[gender] = genders.get(gender, 0) + 1
    train = frozenset(
        (rec.get("label") or "").strip().lower() for _, rec in records if _split(rec) == "train"
    )
    return SheetSummary(frozenset(_split(rec) for _, rec in records), genders, train)


#: spellings of the splits and genders an unread column may hold -> their kind
_SPLIT_SPELLINGS = {
    **{s: s for s in SPLITS},
    "training": "train",
    **dict.fromkeys(("valid", "validation", "val", "devel", "development"), "dev"),
    **dict.fromkeys(("testing", "eval", "evaluation"), "test"),
}
#: cells that say a gender is not known
_NO_GENDER = {"unknown", "na", "n/a", "other", "x"}


def _check_columns(sheet: Path, header: list[str], records: list[tuple[int, dict]]) -> None:
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        hint = "; fields are separated by ',' (this sheet's by ';'?)" if len(header) == 1 else ""
        raise CorpusError(f"{sheet}: missing column(s) {missing}; it has {header}{hint}")
    # an unread column that holds splits or genders where the sheet has no such column:
    # every row would be `test` (or of `unknown` gender) silently. Told by its values, not
    # its name: `fold` may hold cross-validation folds, `sender` anything
    # (four in five of its cells such values, two kinds among them: train and test, F and
    # M; a `room` of "M" throughout is no gender, a `fold` of 1..5 no split)
    unread = [h for h in header if h not in COLUMNS]
    for meant, spellings, blank in (
        ("split", _SPLIT_SPELLINGS, set()),
        ("gender", GENDERS, _NO_GENDER),
    ):
        if meant in header:
            continue
        for name in unread:
            cells = [rec[name].lower() for _, rec in records if rec[name]]
            kinds = {spellings[c] for c in cells if c in spellings}
            hits = sum(c in spellings or c in blank for c in cells)
            if cells and hits >= 0.8 * len(cells) and len(kinds) >= 2:
                values = ", ".join(sorted(set(cells))[:8])
                raise CorpusError(
                    f"{sheet}: column {name!r} holds {meant} values ({values})"
                    f" but is not read (the adapter reads {', '.join(COLUMNS)}): without a "
                    f"{meant!r} column every row is "
                    + ("`test`" if meant == "split" else "of `unknown` gender")
                    + f"; rename it {meant!r}"
                )


def _check_split(sheet: Path, line: int, split: str) -> None:
    if split not in SPLITS:
        raise CorpusError(
            f"{sheet}:{line}: split {split!r} is not one of {', '.join(SPLITS)} (any case; a "
            "sheet without a split column is all test)"
        )


def read_csv_corpus(
    sheet: Path, *, labels: Collection[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the manifest and the excluded table from a CSV sheet."""
    sheet = Path(sheet)
    if sheet.is_dir():
        raise CorpusError(f"{sheet} is a folder: the csv adapter reads one sheet (a CSV file)")
    if not sheet.is_file():
        raise CorpusError(f"corpus sheet not found: {sheet}")
    header, records = _read_sheet(sheet)
    _check_columns(sheet, header, records)
    needed = (*REQUIRED, *(("split",) if "split" in header else ()))
    empty = [(line, [c for c in needed if not rec[c]]) for line, rec in records]
    empty = [f"{'/'.join(cols)} on line {line}" for line, cols in empty if cols]
    if empty:
        raise CorpusError(
            f"{sheet}: empty cell(s): {', '.join(empty[:10])}"
            + (f" and {len(empty) - 10} more line(s)" if len(empty) > 10 else "")
            + f"; every row needs its {', '.join(needed)}: fill them in or delete the rows"
        )
    splits_of: dict[str, dict[str, int]] = {}
    for line, rec in records:
        rec["split"] = split = _split(rec)
        _check_split(sheet, line, split)
        splits_of.setdefault(rec["speaker"], {}).setdefault(split, line)
    leaks = {spk: where for spk, where in splits_of.items() if len(where) > 1}
    if leaks:
        spk, where = next(iter(leaks.items()))
        lines = ", ".join(f"{s} on line {line}" for s, line in where.items())
        raise CorpusError(
            f"{sheet}: {len(leaks)} speaker(s) in more than one split, e.g. {spk!r} ({lines}): "
            "held-out scores would include speakers a model was trained on, and a speaker is "
            "one bootstrap cluster; give each speaker one split."
        )
    base = sheet.parent
    # sheet labels name the classes in any case (`Angry` is angry); answer synonyms
    # (config `labels:`) are for parsing model output and do not apply here
    canonical = {label.lower(): label for label in labels} if labels is not None else None
    candidates = []
    for line, rec in records:
        path = Path(rec["path"].replace("\\", "/"))  # a sheet written on Windows
        full = path if path.is_absolute() else base / path
        utt_id = rec.get("utt_id") or path.with_suffix("").as_posix()
        label = rec["label"] if canonical is None else canonical.get(rec["label"].lower())
        row = {
            "utt_id": utt_id,
            "path": str(full),
            "speaker": rec["speaker"],
            "gender": normalise_gender(rec.get("gender", "")),
            "session": rec.get("session") or rec["speaker"],
            "split": rec["split"],
            "label": label if label is not None else rec["label"],
            "label_raw": rec["label"],
            "where": f"{sheet.name}:{line}",  # named by the audio reasons and id errors
        }
        if label is None:
            row["reason"] = f"label_not_in_set: {rec['label']} (line {line})"
        candidates.append(row)
    return split_kept(candidates)
