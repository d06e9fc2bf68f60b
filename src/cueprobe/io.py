"""All file I/O of cueprobe, and the table contracts checked on every read and write.

Library functions never touch the file system; the CLI reads and writes through
here, so that every table on disk has passed :func:`validate_table`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from cueprobe.define import EGEMAPS_LLDS
from cueprobe.define import ORDINAL_CONCEPTS
from cueprobe.define import Concept
from cueprobe.define import FeatureStatus
from cueprobe.define import ParseStatus
from cueprobe.typing import PathLike

#: column -> kind ("str", "float", "int", "bool"); the columns each table must have
TABLES: dict[str, dict[str, str]] = {
    "manifest": {
        "utt_id": "str",
        "path": "str",
        "speaker": "str",
        "gender": "str",
        "session": "str",
        "split": "str",
        "label": "str",
        "label_raw": "str",
        "duration_s": "float",
    },
    "excluded": {"utt_id": "str", "path": "str", "reason": "str"},
    "features": {
        "utt_id": "str",
        **dict.fromkeys(EGEMAPS_LLDS, "float"),
        "n_frames": "int",
        "voiced_ratio": "float",
        "status": "str",
    },
    "tokens": {
        "utt_id": "str",
        **{f"score_{c}": "float" for c in ORDINAL_CONCEPTS},
        **{c.value: "str" for c in Concept},
        "token_string": "str",
        "flag": "str",
    },
    "conditions": {"utt_id": "str"},
    "predictions": {
        "utt_id": "str",
        "raw_output": "str",
        "pred": "str",
        "parse_status": "str",
        "model_id": "str",
        "revision": "str",
        "prompt_sha": "str",
        "split": "str",
        "label": "str",
    },
    # evaluation stage (one file per corpus and model); metrics columns added later
    # (n_error, n_classes, absent_classes) are optional, so that results evaluated before
    # them stay readable (src/ changes do not re-run jobs): their readers default them
    "metrics": {
        "corpus": "str",
        "model": "str",
        "split": "str",
        "condition": "str",
        "uar": "float",
        "ci_low": "float",
        "ci_high": "float",
        "wa": "float",
        "n": "int",
        "n_speakers": "int",
        "n_unparsed": "int",
        "unparsed_rate": "float",
    },
    "confusion": {
        "corpus": "str",
        "model": "str",
        "split": "str",
        "condition": "str",
        "true": "str",
        "pred": "str",
        "count": "int",
        "rate": "float",
    },
    "comparisons": {
        "corpus": "str",
        "model": "str",
        "split": "str",
        "a": "str",
        "b": "str",
        "role": "str",
        "delta": "float",
        "ci_low": "float",
        "ci_high": "float",
        "mcnemar_b": "int",
        "mcnemar_c": "int",
        "p": "float",
        "p_holm": "float",
    },
    "corruption": {
        "corpus": "str",
        "model": "str",
        "split": "str",
        "p": "float",
        "uar_mean": "float",
        "ci_low": "float",
        "ci_high": "float",
        "rho": "float",
        "rho_p": "float",
    },
}

# the reference model's audio embedding of every utterance (+ logmel_000 ... floats)
TABLES["embeddings"] = {"utt_id": "str"}

# one utterance shard of several conditions' predictions (long: utt_id repeats)
TABLES["prediction_shard"] = {**TABLES["predictions"], "condition": "str"}

#: tables whose utt_id must be unique
_KEYED = {"manifest", "excluded", "features", "tokens", "conditions", "predictions", "embeddings"}

_PREDICTION_VALUES = ("utt_id", "pred", "parse_status", "split", "label")
#: columns that must hold a value in every row: a missing split, label or feature status
#: left its row out of a stage, or changed the tokens, with exit code 0
_FILLED: dict[str, tuple[str, ...]] = {
    "manifest": ("path", "speaker", "gender", "split", "label"),
    "excluded": ("reason",),
    "features": ("status",),
    "tokens": (*(c.value for c in Concept), "token_string", "flag"),
    "predictions": _PREDICTION_VALUES,
    "prediction_shard": (*_PREDICTION_VALUES, "condition"),
}
_SPLITS = ("train", "dev", "test")
_STATUSES = tuple(s.value for s in ParseStatus)
#: columns whose values come from a fixed set
_ONE_OF: dict[str, dict[str, tuple[str, ...]]] = {
    "manifest": {"split": _SPLITS},
    "features": {"status": tuple(s.value for s in FeatureStatus)},
    "predictions": {"split": _SPLITS, "parse_status": _STATUSES},
    "prediction_shard": {"split": _SPLITS, "parse_status": _STATUSES},
}

_KIND_CHECK = {
    "str": lambda s: pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s),
    "float": pd.api.types.is_float_dtype,
    "int": pd.api.types.is_integer_dtype,
    "bool": pd.api.types.is_bool_dtype,
}


class TableError(ValueError):
    """A table on disk or in memory breaks its contract."""


def validate_table(df: pd.DataFrame, kind: str, *, source: PathLike | None = None) -> pd.DataFrame:
    """Check ``df`` against the contract of table ``kind``; return it unchanged.

    Raises
    ------
    TableError
        Naming the table, the file, the column and the first offending values.
    """
    where = f" ({source})" if source is not None else ""
    spec = TABLES[kind]
    missing = [c for c in spec if c not in df.columns]
    if missing:
        raise TableError(
            f"{kind} table{where} lacks column(s) {missing}; it has {list(df.columns)}."
        )
    for col, want in spec.items():
        if len(df) and not _KIND_CHECK[want](df[col]):
            raise TableError(
                f"{kind} table{where}: column {col!r} must be {want}, got {df[col].dtype}."
            )
    if kind in _KEYED:
        dup = df["utt_id"][df["utt_id"].duplicated()]
        if len(dup):
            first = ", ".join(map(repr, dup.unique()[:10]))
            raise TableError(f"{kind} table{where} has {len(dup)} duplicate utt_id(s): {first}.")
        if df["utt_id"].isna().any():
            raise TableError(f"{kind} table{where} has missing utt_id values.")
    for col in _FILLED.get(kind, ()):
        empty = df[col].isna()
        if empty.any():
            rows = _first_rows(df, empty)
            raise TableError(
                f"{kind} table{where}: column {col!r} has no value in {int(empty.sum())} "
                f"row(s) ({rows}); every row needs one."
            )
    for col, allowed in _ONE_OF.get(kind, {}).items():
        odd = ~df[col].isin(allowed)
        if odd.any():
            seen = sorted(map(str, df.loc[odd, col].unique()))[:5]
            raise TableError(
                f"{kind} table{where}: column {col!r} holds {seen} ({_first_rows(df, odd)}); "
                f"it takes {list(allowed)}."
            )
    return df


def _first_rows(df: pd.DataFrame, mask: pd.Series) -> str:
    """The first rows where ``mask`` holds, by utt_id when the table has one."""
    if "utt_id" in df.columns:
        return "utt_id " + ", ".join(map(repr, df.loc[mask, "utt_id"].head(3)))
    return "row " + ", ".join(map(str, df.index[mask][:3]))


def read_table(path: PathLike, kind: str) -> pd.DataFrame:
    """Read a Parquet table and validate it against its contract."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{kind} table not found: {path}")
    return validate_table(pd.read_parquet(path), kind, source=path)


def write_table(df: pd.DataFrame, path: PathLike, kind: str | None = None) -> None:
    """Validate (when ``kind`` is given) and write a Parquet table atomically."""
    if kind is not None:
        validate_table(df, kind, source=path)
    _atomic_write(Path(path), lambda tmp: df.to_parquet(tmp, index=False))


def file_digest(path: PathLike) -> str:
    """Short BLAKE2b of a file's bytes (16 hex digits): identifies its content."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=8)).hexdigest()


def write_json(obj: Any, path: PathLike) -> None:
    """Write strict JSON (NaN becomes null) with sorted keys (byte-stable), atomically."""
    text = json.dumps(_nan_to_none(obj), indent=2, sort_keys=True, default=_json_default)
    text += "\n"
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_text(text: str, path: PathLike) -> None:
    """Write a text file (UTF-8, as given) atomically."""
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_bytes(data: bytes, path: PathLike) -> None:
    """Write a binary file (e.g. a rendered figure) atomically."""
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def read_json(path: PathLike) -> Any:
    """Read a JSON file; one that is not JSON fails naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a JSON file: {err}") from None


def _nan_to_none(obj: Any) -> Any:
    """NaN is not JSON: browsers and jq reject it; write null instead."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, Mapping):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _atomic_write(path: Path, write) -> None:
    """Write to a temporary file beside ``path`` and rename: no half-written outputs.

    The data reach the disk before the rename, and the rename before the job ends
    (``fsync`` of the file, then of its folder): after a node crash Snakemake would
    otherwise find an empty file under the name of an output it records as complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file 0600; give it the mode a plain open() would (umask), so
        # that the rest of a lab can read the results on a shared file system
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def _fsync(path: str | Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
