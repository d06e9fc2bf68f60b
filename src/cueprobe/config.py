"""Checks of the workflow config that the JSON schema cannot make, run at planning.

Each returns the problems as messages naming the config key, so that a fault fails
``snakemake`` before any job runs, in one line, instead of in a job's log (or not at
all: a corpus sheet that went missing left its old manifest "up to date").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cueprobe.backends.factory import BACKENDS
from cueprobe.corpora.aibo import LABEL_FILE as AIBO_LABEL_FILE


def schema_errors(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """The config's schema violations, most relevant first, each as ``key.path: message``.

    Stricter than JSON Schema on one point: an ``integer`` must be written as one. JSON
    Schema takes 3.0 for an integer, and ``n_bins: 3.0`` then failed in the tokens job
    (``--n-bins: invalid int value: '3.0'``), after Snakemake had deleted its output.

    Examples
    --------
    >>> schema = {"type": "object", "properties": {"n_bins": {"type": "integer"}}}
    >>> print(*schema_errors({"n_bins": 3.0}, schema))
    n_bins: 3.0 is not of type 'integer'
    >>> schema_errors({"n_bins": 3}, schema)
    []
    >>> names = {"properties": {"models": {"propertyNames": {"pattern": "^[A-Za-z0-9_.-]+$"}}}}
    >>> print(*schema_errors({"models": {"Qwen/Qwen2-Audio": {}}}, names))
    models: 'Qwen/Qwen2-Audio' does not match '^[A-Za-z0-9_.-]+$' (a name is a folder name in results/: letters, digits, _ . -, the hub id goes in model_id)
    >>> print(*schema_errors({"tokens": {}}, {"required": ["seed"]}))
    config: 'seed' is a required property (a --configfile replaces config/config.yaml: to change a few keys, give both, `--configfile config/config.yaml mine.yaml`)
    """
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
    )
    validator = jsonschema.validators.extend(base, type_checker=checker)(schema)
    # relevance ranks the best match highest (best_match takes the max)
    errors = sorted(
        validator.iter_errors(config), key=jsonschema.exceptions.relevance, reverse=True
    )
    out, told = [], False
    for err in errors:
        best = jsonschema.exceptions.best_match([err])
        key = ".".join(map(str, best.absolute_path)) or "config"
        hint = ""
        if "propertyNames" in best.schema_path and key in ("models", "corpora"):
            hint = (  # `Qwen/Qwen2-Audio` as a model's name: its jobs' folders
                " (a name is a folder name in results/: letters, digits, _ . -"
                + (", the hub id goes in model_id)" if key == "models" else ")")
            )
        elif best.validator == "required" and key == "config" and not told:
            told = True
            # `--configfile bins.yaml` alone replaces the default config, never extends it
            hint = (
                " (a --configfile replaces config/config.yaml: to change a few keys, give "
                "both, `--configfile config/config.yaml mine.yaml`)"
            )
        out.append(f"{key}: {best.message}{hint}")
    return out


def corpus_source(cfg: Mapping[str, Any]) -> Path | None:
    """The file (csv, aibo) or folder (iemocap) a corpus is read from; None for a demo.

    Examples
    --------
    >>> corpus_source({"adapter": "aibo", "root": "/data/aibo"}).as_posix()
    '/data/aibo/labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt'
    """
    adapter = cfg["adapter"]
    if adapter.startswith("demo-"):
        return None
    root = Path(cfg["root"])
    return root / AIBO_LABEL_FILE if adapter == "aibo" else root


def missing_sources(corpora: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Corpora whose sheet, label file or root does not exist (or starts with ``~``,
    which no job expands).

    Snakemake finds a job whose input is missing but whose outputs exist up to date, so
    a mistyped ``root`` would otherwise serve the old manifest, and everything after it,
    with exit code 0.

    Examples
    --------
    >>> missing_sources({"c": {"adapter": "csv", "root": "/no/such/sheet.csv"}})
    ['corpora.c.root: /no/such/sheet.csv does not exist (adapter csv reads it)']
    >>> missing_sources({"d": {"adapter": "demo-iemocap"}})
    []
    >>> missing_sources({"c": {"adapter": "csv", "root": "/"}})
    ['corpora.c.root: / is a folder: the csv adapter reads a file']
    >>> missing_sources({"i": {"adapter": "iemocap", "root": "~/IEMOCAP"}})
    ['corpora.i.root: ~/IEMOCAP: write the full path (no ~)']
    """
    out = []
    for name, cfg in corpora.items():
        source = corpus_source(cfg)
        problem = (
            None
            if source is None
            else _path_problem(str(source), f"adapter {cfg['adapter']} reads it")
        )
        if (
            problem is None
            and source is not None
            and source.is_dir() != (cfg["adapter"] == "iemocap")
        ):
            problem = (
                " is a file: the iemocap adapter reads the corpus folder"
                if cfg["adapter"] == "iemocap"
                else f" is a folder: the {cfg['adapter']} adapter reads a file"
            )
        if problem:
            out.append(f"corpora.{name}.root: {source}{problem}")
    return out


def _looks_local(path: str) -> bool:
    """A path, not a Hugging Face repo id ("org/name"): absolute, ./, ../ or ~, a
    Windows separator, or a trailing slash."""
    return (
        path.startswith(("/", "./", "../", "~"))
        or path in (".", "..")
        or "\\" in path
        or path.endswith("/")
    )


def _path_problem(path: str, what: str) -> str | None:
    """Why a local path in the config will not load (the text after the path), or None;
    ``what`` says what the path is, when it does not exist."""
    if path.startswith("~"):  # nothing in a job expands it (from_pretrained neither)
        return ": write the full path (no ~)"
    if not Path(path).exists():
        # a relative path is read from the folder Snakemake runs in (its --directory),
        # not from where the config file or the shell is
        where = (
            ""
            if Path(path).is_absolute()
            else f"; read from {Path.cwd()}, where the workflow runs (--directory): write it absolute"
        )
        return f" does not exist ({what}{where})"
    return None


def missing_model_files(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """transformers models whose ``model_id`` or ``adapter`` is a local path that is absent
    (or starts with ``~``, which no job expands).

    ``from_pretrained`` takes a missing folder for a Hub repo id and fails in the job with
    "Repo id must be in the form 'repo_name' or 'namespace/repo_name'".

    Examples
    --------
    >>> missing_model_files({"m": {"backend": "transformers", "model_id": "/no/such/ckpt"}})
    ['models.m.model_id: /no/such/ckpt does not exist (a local checkpoint folder)']
    >>> missing_model_files({"m": {"backend": "transformers", "model_id": "Qwen/Qwen2-Audio"}})
    []
    >>> missing_model_files({"m": {"backend": "transformers", "model_id": "~/ckpt"}})
    ['models.m.model_id: ~/ckpt: write the full path (no ~)']
    """
    out = []
    for name, cfg in models.items():
        if cfg.get("backend") != "transformers":
            continue
        for key in ("model_id", "adapter"):
            value = cfg.get(key)
            if not value:
                continue
            problem = (
                _path_problem(value, "a local checkpoint folder")
                if _looks_local(value)
                else _relative_path_problem(value)  # a Hub id, unless it cannot be one
            )
            if problem:
                out.append(f"models.{name}.{key}: {value}{problem}")
    return out


def _relative_path_problem(value: str) -> str | None:
    """Why ``value``, read as a Hub repo id, is more likely a local folder that is absent
    here (relative paths are read from the folder Snakemake runs in), or None.

    ``from_pretrained`` loads an existing folder, so ``models/ckpt`` works where it
    exists; where it does not, it becomes a Hub id, and a job without internet retried
    the Hub for minutes before failing with "couldn't connect to huggingface.co". A Hub
    id is ``name`` or ``org/name``: two slashes make it a path. (A first part that is a
    folder here is no evidence: ``hf download --local-dir Qwen/Qwen2-Audio-7B-Instruct``
    makes ``Qwen/`` while ``Qwen/Qwen2.5-Omni-7B`` stays a Hub id.)

    Examples
    --------
    >>> _relative_path_problem("Qwen/Qwen2-Audio-7B-Instruct") is None
    True
    >>> _relative_path_problem("ckpts/qwen/audio").startswith(" does not exist in ")
    True
    """
    if Path(value).exists() or value.count("/") < 2:
        return None
    return (
        f" does not exist in {Path.cwd()} (the folder the workflow runs in, which relative "
        "paths are read from), and it is no Hub id (`org/name`): write the checkpoint "
        "folder's full path"
    )


def local_digest(path: str, *, edge_bytes: int = 1 << 20) -> str | None:
    """12 hex digits identifying a local checkpoint folder's files, None for a hub id.

    Over each file (hidden ones aside): its path in the folder, its size, and its first
    and last ``edge_bytes``; a copy of the folder keeps it (no time stamps), new weights
    change it, and a 15 GB checkpoint is read in milliseconds, not minutes.
    """
    root = Path(path)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    files = sorted(
        f
        for f in root.rglob("*")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts)
    )
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(root).as_posix()}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= 2 * edge_bytes:
                h.update(fh.read())
            else:
                h.update(fh.read(edge_bytes))
                fh.seek(-edge_bytes, 2)
                h.update(fh.read())
    return h.hexdigest()[:12]


def model_weights(cfg: Mapping[str, Any]) -> str:
    """The files of a ``transformers`` model's local checkpoint and adapter folders, as
    digests (``local_digest``); "" for a Hub id and the other backends.

    A parameter of the inference jobs: new weights put in a local folder re-run them (its
    answer journal is kept per digest, so the old answers are not reused); a copy of the
    folder elsewhere keeps the digest. A Hub id's revision is already a parameter.

    Examples
    --------
    >>> model_weights({"backend": "transformers", "model_id": "Qwen/Qwen2-Audio-7B-Instruct"})
    ''
    """
    if cfg.get("backend") != "transformers":
        return ""
    digests = {k: local_digest(str(cfg[k])) for k in ("model_id", "adapter") if cfg.get(k)}
    return " ".join(f"{k}:{d}" for k, d in digests.items() if d)


def bad_answer_patterns(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Models whose ``answer_pattern`` is not a usable regular expression.

    Checked when the workflow is planned: the pattern is first used after the model has
    answered every prompt.

    Examples
    --------
    >>> print(*bad_answer_patterns({"m": {"answer_pattern": "(?s)</think>(.*"}}))
    models.m.answer_pattern: answer_pattern '(?s)</think>(.*' is not a regular expression: missing ), unterminated subpattern at position 12
    >>> bad_answer_patterns({"m": {"answer_pattern": None}, "n": {}})
    []
    """
    from cueprobe.parsing import compile_answer_pattern

    out = []
    for name, cfg in models.items():
        if cfg.get("answer_pattern") is not None:
            try:
                compile_answer_pattern(cfg["answer_pattern"])
            except ValueError as err:
                out.append(f"models.{name}.answer_pattern: {err}")
    return out


def label_clashes(corpora: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Configured ``labels`` with a word (label or synonym) that names two labels, or a
    label named like the confusion tables' column of answers outside the label set.

    Examples
    --------
    >>> print(*label_clashes({"c": {"labels": {"angry": ["mad"], "happy": ["mad"]}}}))
    corpora.c.labels: 'mad' names angry and happy (an answer of it could not be parsed)
    """
    from cueprobe.metrics import OTHER
    from cueprobe.parsing import label_word_clashes

    out = [
        f"corpora.{name}.labels: {clash} (an answer of it could not be parsed)"
        for name, cfg in corpora.items()
        for clash in label_word_clashes(cfg.get("labels") or {})
    ]
    # confusion tables, Figure 2 and the constant-answer alarm would take the class for
    # the answers outside the label set
    out += [
        f"corpora.{name}.labels: {label!r} is the name of the answers outside the label set "
        f"(unparsed or error) in the confusion tables and Figure 2; give the class another "
        f"name (e.g. {label}_emotion), in the sheet too"
        for name, cfg in corpora.items()
        for label in cfg.get("labels") or {}
        if str(label).strip().lower() == OTHER
    ]
    return out


def conflict_map_gaps(order: Sequence[str], voice_quality_map: Mapping[str, str]) -> list[str]:
    r"""Faults of ``interventions.conflict_voice_quality`` against the rule's ``order``.

    Every value the VOICE_QUALITY rule can give needs an opposite (the conflict job
    fails on the first token without one), and an opposite must be a value the rule
    can give: a conflicting token that no aligned block ever shows tells the model
    "this is a conflict condition" by itself.

    Examples
    --------
    >>> vq_map = {"MODAL": "ROUGH", "ROUGH": "MODAL", "UNVOICED": "UNVOICED"}
    >>> print(*conflict_map_gaps(["UNVOICED", "BREATHY"], vq_map), sep="\n")
    interventions.conflict_voice_quality: no opposite for BREATHY (tokens.voice_quality.order gives it)
    interventions.conflict_voice_quality: MODAL -> ROUGH, a value tokens.voice_quality.order never gives (it gives UNVOICED, BREATHY, MODAL)
    """
    from cueprobe.tokens import voice_quality_values

    values = voice_quality_values(order)
    out = [
        f"interventions.conflict_voice_quality: no opposite for {v} "
        "(tokens.voice_quality.order gives it)"
        for v in values
        if v not in voice_quality_map
    ]
    out += [
        f"interventions.conflict_voice_quality: {v} -> {voice_quality_map[v]}, a value "
        f"tokens.voice_quality.order never gives (it gives {', '.join(values)})"
        for v in values
        if v in voice_quality_map and voice_quality_map[v] not in values
    ]
    return out


def unknown_paper_rows(
    models: Mapping[str, Mapping[str, Any]], paper: Mapping[str, Any]
) -> list[str]:
    """Models whose ``paper_row`` names no row of ``tables.paper`` (a typo on either side
    silently left the tables without the paper's values for that model).

    Examples
    --------
    >>> print(*unknown_paper_rows({"af3": {"paper_row": "AF-3"}}, {"AF3": {}}))
    models.af3.paper_row: 'AF-3' is not a row of tables.paper (its rows: AF3)
    >>> unknown_paper_rows({"ref": {"paper_row": None}}, {})
    []
    """
    rows = ", ".join(paper) or "none"
    return [
        f"models.{name}.paper_row: {cfg['paper_row']!r} is not a row of tables.paper "
        f"(its rows: {rows})"
        for name, cfg in models.items()
        if cfg.get("paper_row") is not None and cfg["paper_row"] not in paper
    ]


def adapter_conflicts(
    corpora: Mapping[str, Mapping[str, Any]],
    models: Mapping[str, Mapping[str, Any]],
    *,
    fit_on: str = "all",
) -> list[str]:
    """Corpus options the corpus' data cannot satisfy, found only in a later job.

    A split a kind of model (zero-shot, trained: those the config has) is scored on but
    the corpus lacks fails evaluation after every inference job: IEMOCAP has no dev,
    FAU-Aibo with ``dev_speakers: []`` neither, and a csv corpus has the splits its
    sheet names. Gender-specific edges on FAU-Aibo (its labels name no genders) fail
    the tokens job. A corpus without a train split cannot fit token edges on it
    (``tokens.fit_on: train``) nor train the reference model, and the reference model
    must not be scored on what it trains on (``train``, ``all``): each failed after
    every feature shard (or the training) had run.

    Examples
    --------
    >>> trained = {"ref": {"zero_shot": False}}
    >>> cfg = {"adapter": "iemocap", "eval_splits": {"trained": ["dev"]}}
    >>> print(*adapter_conflicts({"i": cfg}, trained))
    corpora.i.eval_splits.trained: the iemocap adapter has no split 'dev' (it has test, train)
    >>> adapter_conflicts({"i": cfg}, {"alm": {"zero_shot": True}})  # no trained model
    []
    >>> print(*adapter_conflicts({"a": {"adapter": "aibo", "dev_speakers": []}}, trained))
    corpora.a: trained models are scored on ['dev', 'test'] (the aibo default: set eval_splits), but the aibo adapter with dev_speakers: [] has no split 'dev' (it has test, train)
    >>> test_only = {"zero_shot": ["test"], "trained": ["test"]}
    >>> adapter_conflicts({"a": {"adapter": "aibo", "dev_speakers": [], "eval_splits": test_only}}, trained)
    []
    >>> adapter_conflicts({"c": {"adapter": "csv", "root": "/no/such.csv", "labels": {"sad": []}}}, trained)
    []
    >>> aibo_all = {"adapter": "aibo", "eval_splits": {"zero_shot": ["all"]}}
    >>> print(*adapter_conflicts({"a": aibo_all}, {"alm": {"zero_shot": True}}))
    corpora.a.eval_splits.zero_shot: ['all']: a FAU-Aibo corpus is reported in Table II, whose columns are dev, test only
    >>> ref = {"reference": {"backend": "reference", "zero_shot": False}}
    >>> scored_all = {"adapter": "iemocap", "eval_splits": {"trained": ["all"]}}
    >>> print(*adapter_conflicts({"i": scored_all}, ref))
    corpora.i.eval_splits.trained: the reference model reference trains on the train split and must not be scored on ['all']
    >>> print(*adapter_conflicts({"a": {"adapter": "demo-aibo", "gender_specific": ["PITCH"]}}, {}))
    corpora.a.gender_specific: the aibo adapter has no speaker genders (FAU-Aibo's labels name none); gender-specific edges need F and M speakers
    """
    from cueprobe.corpora import corpus_splits
    from cueprobe.corpora import eval_splits
    from cueprobe.corpora.common import CorpusError
    from cueprobe.corpora.csvsheet import sheet_summary
    from cueprobe.tables import TABLE2_SPLITS as TABLE2

    kinds = {bool(m.get("zero_shot", True)) for m in models.values()}
    refs = [m for m, c in models.items() if c.get("backend") == "reference"]
    out = []
    for name, cfg in corpora.items():
        adapter = cfg["adapter"].removeprefix("demo-")
        if adapter == "csv" and not cfg.get("labels"):  # a sheet's classes are not known
            out.append(
                f"corpora.{name}.labels: a csv corpus needs its class set, each class with "
                "the answer synonyms the parser accepts (labels: {angry: [], sad: [sadness]})"
            )
        if adapter == "csv":  # a sheet the manifest job would refuse: say why, not its splits
            try:
                summary = sheet_summary(Path(cfg["root"]))
            except CorpusError as err:
                out.append(f"corpora.{name}.root: {err}")
                continue
            except OSError:
                pass  # a missing sheet: missing_sources names it
            else:
                lacking = [
                    lab
                    for lab in cfg.get("labels") or {}
                    if lab.lower() not in summary.train_labels
                ]
                if refs and "train" in summary.splits and lacking:
                    classes = {lab.lower() for lab in cfg.get("labels") or {}}
                    others = sorted(summary.train_labels - classes - {""})
                    # a sheet labelled with the synonyms (anger for angry): the advice
                    # above would be wrong; say what the rows hold instead
                    hint = (
                        f"; its train rows hold {others[:8]}, which are not classes of "
                        "labels (the label column holds the class names; the synonyms only "
                        "match a model's answers)"
                        if others
                        else ""
                    )
                    out.append(
                        f"corpora.{name}: the reference model(s) {refs} train on its train "
                        f"split, but the sheet's train rows have no class {lacking}: the "
                        "classifier could never answer it; leave it out of labels, or give "
                        f"the train split speakers who have it{hint}"
                    )
        known = corpus_splits(cfg)  # None: unknown (its manifest job will say why)
        have, what = known or (set(), "")
        given = cfg.get("eval_splits") or {}
        for zero_shot in sorted(kinds if known else (), reverse=True):
            kind = "zero_shot" if zero_shot else "trained"
            splits = eval_splits(cfg, zero_shot=zero_shot)
            for split in (s for s in splits if s not in (*have, "all")):
                where = (
                    f"corpora.{name}.eval_splits.{kind}:"
                    if kind in given
                    else f"corpora.{name}: {kind.replace('_', '-')} models are scored on "
                    f"{splits} (the {adapter} default: set eval_splits), but"
                )
                out.append(
                    f"{where} {what} has no split {split!r} (it has {', '.join(sorted(have))})"
                )
        if known and "train" not in have:
            if fit_on == "train":
                out.append(
                    f"corpora.{name}: tokens.fit_on is train, but {what} has no split 'train' "
                    f"(it has {', '.join(sorted(have))}): set fit_on: all"
                )
            if refs:
                out.append(
                    f"corpora.{name}: the reference model(s) {refs} train on its train split, "
                    f"but {what} has none (it has {', '.join(sorted(have))}): give it train "
                    "rows, or leave the reference model out"
                )
        for model in refs:
            kind = "zero_shot" if models[model].get("zero_shot", True) else "trained"
            seen = [
                s for s in eval_splits(cfg, zero_shot=kind == "zero_shot") if s in ("train", "all")
            ]
            if seen:
                out.append(
                    f"corpora.{name}.eval_splits.{kind}: the reference model {model} trains on "
                    f"the train split and must not be scored on {seen}"
                )
        if adapter == "aibo":  # reported in Table II, whose columns are dev and test
            for zero_shot in sorted(kinds, reverse=True):
                kind = "zero_shot" if zero_shot else "trained"
                other = [s for s in eval_splits(cfg, zero_shot=zero_shot) if s not in TABLE2]
                if other:
                    out.append(
                        f"corpora.{name}.eval_splits.{kind}: {other}: a FAU-Aibo corpus is "
                        f"reported in Table II, whose columns are {', '.join(TABLE2)} only"
                    )
        if adapter == "aibo" and cfg.get("gender_specific"):
            out.append(
                f"corpora.{name}.gender_specific: the aibo adapter has no speaker genders "
                "(FAU-Aibo's labels name none); gender-specific edges need F and M speakers"
            )
        if adapter == "csv" and cfg.get("gender_specific"):
            try:
                genders = sheet_summary(Path(cfg["root"])).genders
            except (OSError, CorpusError):
                genders = None  # named above, or a missing sheet (missing_sources)
            if genders is not None and not set(genders) & {"F", "M"}:
                out.append(
                    f"corpora.{name}.gender_specific: no row of the sheet {cfg['root']} has "
                    f"gender F or M (its genders: {genders}); give the sheet a gender column "
                    "(F/M, female/male...), or set gender_specific: []"
                )
    return out


def unquoted_names(config: Mapping[str, Any]) -> list[str]:
    """Corpus, model and label names that YAML did not read as text.

    Unquoted, ``2024`` is a number and ``no``, ``yes``, ``on``, ``off`` are booleans to
    YAML: a corpus named 2024 or a sheet's class codes ``0``, ``1`` as label names failed
    planning with a traceback (``'int' object has no attribute 'lower'``).

    Examples
    --------
    >>> for problem in unquoted_names({"corpora": {"c": {"labels": {1: [], "sad": [], False: []}}}}):
    ...     print(problem)
    corpora.c.labels: 1 is not text to YAML (numbers and yes/no/on/off are read as such): quote it as written, e.g. '1' (01 is 1 to YAML, 010 is 8)
    corpora.c.labels: False is not text to YAML (numbers and yes/no/on/off are read as such): quote it as written, e.g. 'no' (YAML reads no, off and false as False)
    """
    out = []

    def check(where: str, value: Any) -> None:
        if isinstance(value, str):
            return
        read = (
            f"YAML reads {'yes, on and true' if value else 'no, off and false'} as {value}"
            if isinstance(value, bool)
            else "01 is 1 to YAML, 010 is 8"
        )
        example = ("yes" if value else "no") if isinstance(value, bool) else value
        out.append(
            f"{where}: {value!r} is not text to YAML (numbers and yes/no/on/off are read as "
            f"such): quote it as written, e.g. '{example}' ({read})"
        )

    for section in ("corpora", "models"):
        entries = config.get(section)
        if isinstance(entries, Mapping):
            for name in entries:
                check(section, name)
    for name, cfg in (config.get("corpora") or {}).items():
        labels = cfg.get("labels") if isinstance(cfg, Mapping) else None
        if isinstance(labels, Mapping):
            for label, synonyms in labels.items():
                check(f"corpora.{name}.labels", label)
                for word in synonyms if isinstance(synonyms, list) else ():
                    check(f"corpora.{name}.labels.{label}", word)
    return out


#: model keys only some backends read (the others ignore them): which backends
_BACKEND_ONLY: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "architecture",
            "dtype",
            "trust_remote_code",
            "adapter",
            "adapter_subfolder",
            "adapter_revision",
        ),
        ("transformers",),
    ),  # fmt: skip
    **dict.fromkeys(
        ("base_url", "api_key_env", "seed", "concurrency", "max_retries", "timeout_s"),
        ("openai",),
    ),
    "reference": ("reference",),
    **dict.fromkeys(("model_id", "revision", "max_new_tokens"), ("transformers", "openai")),
}


#: keys an override file can set to null: set there, they are refused (the others warned:
#: several --configfile files merge, so a later file cannot take a key of an earlier out)
_NULLABLE = frozenset({"dev_speakers", "adapter", "adapter_subfolder", "adapter_revision"})


def ignored_keys(
    corpora: Mapping[str, Any], models: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """Keys of the config as written (before the schema's defaults) that their corpus'
    adapter or their model's backend does not read: ``(refused, warned)``.

    Each was taken silently: a ``root`` beside a demo adapter (the copy of config.yaml
    with the user's root gave synthetic audio), ``dev_speakers`` on IEMOCAP, ``adapter:``
    (a LoRA) on an openai model (the server's model answered without it). Refused where
    the fix is in the user's hands (``root``: name the adapter; a key that takes null);
    warned where a merged base file may hold it (paper.yaml's ``architecture`` under an
    override that serves the model with vLLM). A null value is no value.

    Examples
    --------
    >>> refused, _ = ignored_keys({"c": {"adapter": "demo-iemocap", "root": "/data/IEMOCAP"}}, {})
    >>> print(*refused)
    corpora.c.root: the demo-iemocap adapter generates its audio (under resources/demo/c) and reads no root: for the corpus at /data/IEMOCAP, set adapter: iemocap
    >>> refused, warned = ignored_keys({}, {"m": {"backend": "openai", "adapter": "lora/", "dtype": "auto"}})
    >>> for problem in refused + warned:
    ...     print(problem)
    models.m.adapter: the openai backend does not read it (a transformers key): load the adapter in the server (vLLM: --lora-modules) and name it in model_id, or set adapter: null
    models.m.dtype: ignored: the openai backend does not read it (a transformers key)
    """
    refused: list[str] = []
    warned: list[str] = []

    def found(where: str, key: str, reason: str, hint: str) -> None:
        if key in _NULLABLE or key == "root":
            refused.append(f"{where}.{key}: {reason}: {hint}")
        else:
            warned.append(f"{where}.{key}: ignored: {reason}")

    for name, cfg in corpora.items():
        if not isinstance(cfg, Mapping) or not isinstance(cfg.get("adapter"), str):
            continue
        adapter = cfg["adapter"]
        if adapter.startswith("demo-") and cfg.get("root") is not None:
            found(
                f"corpora.{name}",
                "root",
                f"the {adapter} adapter generates its audio (under resources/demo/{name}) and "
                "reads no root",
                f"for the corpus at {cfg['root']}, set adapter: {adapter.removeprefix('demo-')}",
            )
        if not adapter.startswith("demo-") and cfg.get("demo"):
            found(f"corpora.{name}", "demo", f"the {adapter} adapter reads no demo options", "")
        for key in ("dev_speakers", "n_dev_speakers"):
            if cfg.get(key) is not None and adapter.removeprefix("demo-") != "aibo":
                found(
                    f"corpora.{name}",
                    key,
                    f"the {adapter} adapter does not read it (FAU-Aibo's dev split)",
                    "its splits are eval_splits' or the sheet's, or set it to null",
                )
    for name, cfg in models.items():
        if not isinstance(cfg, Mapping) or cfg.get("backend") not in BACKENDS:
            continue
        backend = cfg["backend"]
        for key, readers in _BACKEND_ONLY.items():
            if cfg.get(key) is not None and backend not in readers:
                hint = (
                    "load the adapter in the server (vLLM: --lora-modules) and name it in "
                    f"model_id, or set {key}: null"
                    if backend == "openai" and key.startswith("adapter")
                    else f"set backend: {readers[0]}, or {key}: null"
                )
                found(
                    f"models.{name}",
                    key,
                    f"the {backend} backend does not read it (a {' and '.join(readers)} key)",
                    hint,
                )
    return refused, warned


def shared_model_labels(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Models whose ``label`` (their name in tables and figures) is another model's.

    Examples
    --------
    >>> print(*shared_model_labels({"a": {"label": "Ref"}, "b": {"label": "Ref"}, "c": {}}))
    models: a and b have the label 'Ref': their rows in Tables II-III could not be told apart
    """
    seen: dict[str, list[str]] = {}
    for name, cfg in models.items():
        seen.setdefault(cfg.get("label") or name, []).append(name)
    return [
        f"models: {' and '.join(names)} have the label {label!r}: their rows in Tables II-III "
        "could not be told apart"
        for label, names in seen.items()
        if len(names) > 1
    ]


def yaml_surprises(text: str, source: str) -> list[str]:
    """What a YAML config says that its writer most likely did not mean, with its lines.

    YAML loaders keep the last of two equal keys: a second ``models:`` block pasted at the
    end of the file dropped every model of the first with exit code 0, a corpus' second
    ``shards:`` overrode the first. And YAML 1.1 (PyYAML, Snakemake's loader) reads a
    number with a leading zero as octal and one with colons as base 60: ``seed: 0042``
    ran with seed 34, ``n_per_speaker: 1:30`` with 90.

    Examples
    --------
    >>> print(*yaml_surprises("models:\\n  a: {}\\nseed: 1\\nmodels:\\n  b: {}\\n", "c.yaml"))
    c.yaml, line 4: 'models' is written twice in one mapping (first on line 1); YAML keeps only the last
    >>> print(*yaml_surprises("seed: 0042\\n", "c.yaml"))
    c.yaml, line 1: 0042 is 34 to YAML (octal): quote it if it is a name, else write the number meant
    """
    import re

    import yaml

    found: list[str] = []

    class Loader(yaml.SafeLoader):
        def construct_yaml_int(self, node):
            value = super().construct_yaml_int(node)
            written = node.value.replace("_", "")
            if re.fullmatch(r"[-+]?0[0-7]+", written) or ":" in written:
                kind = "base 60" if ":" in written else "octal"
                found.append(
                    f"{source}, line {node.start_mark.line + 1}: {node.value} is {value} to "
                    f"YAML ({kind}): quote it if it is a name, else write the number meant"
                )
            return value

        def construct_mapping(self, node, deep=False):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: a merge,
                    continue  # whose keys the mapping's own may override
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in first:
                        found.append(
                            f"{source}, line {line}: {key!r} is written twice in one mapping "
                            f"(first on line {first[key]}); YAML keeps only the last"
                        )
                    else:
                        first[key] = line
                except TypeError:  # an unhashable key: the loader itself says so
                    pass
            return super().construct_mapping(node, deep=deep)

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    try:
        yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return found  # the config loader reports what is not YAML
    return found


def non_finite_numbers(value: Any, where: str = "config") -> list[str]:
    """Numbers of the config that are NaN or infinite (YAML's ``.nan``, ``.inf``).

    JSON Schema's ranges let NaN through (every comparison with it is false): an
    ``alpha: .nan`` made nothing significant, a ``token_dropout: .nan`` turned dropout off.

    Examples
    --------
    >>> print(*non_finite_numbers({"evaluation": {"alpha": float("nan")}, "seed": 1}))
    evaluation.alpha: nan is no number to compute with
    """
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where.removeprefix('config.')}: {value} is no number to compute with"]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in non_finite_numbers(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite_numbers(v, f"{where}.{i}")]
    return []
