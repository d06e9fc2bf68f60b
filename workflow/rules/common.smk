# Helpers that turn the validated config into targets, parameters and resources.
# Rules only wire files to `cueprobe` subcommands; every decision lives in src/.
import functools
import json
import shlex
import os
import re
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.logging import logger
from snakemake.utils import validate

# Jobs run `python -m cueprobe` from this checkout, in the venv or in a conda
# env per kind of job alike (envs/README.md): the package is found on PYTHONPATH,
# which local and SLURM jobs inherit from this process. Planning imports it from
# here too, whatever copy the Python running Snakemake has installed.
_SRC = str(Path(workflow.basedir, "src").resolve())
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH", "")) if p)
)
sys.path.insert(0, _SRC)

from cueprobe import io
from cueprobe.backends.factory import answer_config
from cueprobe.backends.factory import with_backend_defaults
from cueprobe.corpora import corpus_labels
from cueprobe.corpora import eval_splits
from cueprobe.corpora import exclusion_note
from cueprobe.corpora.iemocap import emo_evaluation_files
from cueprobe.config import adapter_conflicts
from cueprobe.config import bad_answer_patterns
from cueprobe.config import conflict_map_gaps
from cueprobe.config import yaml_surprises
from cueprobe.config import ignored_keys
from cueprobe.config import label_clashes
from cueprobe.config import corpus_source
from cueprobe.config import missing_model_files
from cueprobe.config import model_weights
from cueprobe.config import missing_sources
from cueprobe.config import non_finite_numbers
from cueprobe.config import schema_errors
from cueprobe.config import shared_model_labels
from cueprobe.config import unknown_paper_rows
from cueprobe.config import unquoted_names
from cueprobe.prompts import PromptTemplates
from cueprobe.tables import PAPER_ADAPTER
from cueprobe.tokens import check_token_template


def fail_on(problems):
    """Stop planning with the config's problems, one line each, naming their keys."""
    if problems:
        raise WorkflowError("config:\n  " + "\n  ".join(problems))


# the schema's own message for each fault, most relevant first (validate's dump of the
# schema ran to hundreds of lines); validate then fills in the defaults
# a key written twice (YAML keeps the last: a second `models:` block dropped the first),
# a number YAML 1.1 reads as octal or base 60 (`seed: 0042` is 34)
fail_on(
    [
        p
        for f in workflow.configfiles
        for p in yaml_surprises(Path(f).read_text(encoding="utf-8"), str(f))
    ]
)
fail_on(unquoted_names(config) + non_finite_numbers(config))  # YAML's surprises
with open(Path(workflow.current_basedir, "../schemas/config.schema.yaml")) as f:
    fail_on(schema_errors(config, yaml.safe_load(f)))
# keys as written, before the schema's defaults: what the adapter or backend ignores
refused, warned = ignored_keys(config["corpora"], config["models"])
fail_on(refused)
if not workflow.remote_exec:  # said once, where the run is planned
    for warning in warned:
        logger.warning(f"config: {warning}")
validate(config, "../schemas/config.schema.yaml")
# a template with a wrong field fails here, not in every inference job
try:
    PromptTemplates(**config["prompts"])
    check_token_template(config["tokens"]["template"])
except ValueError as err:
    raise WorkflowError(f"config: {err}") from None
# faults a job would find late: an answer_pattern is first used after the model has
# answered every prompt, a split the corpus lacks fails evaluation after inference, a
# synonym two labels claim makes their answers unparseable
fail_on(
    bad_answer_patterns(config["models"])
    + adapter_conflicts(
        config["corpora"], config["models"], fit_on=config["tokens"]["fit_on"]
    )
    + label_clashes(config["corpora"])
    + shared_model_labels(config["models"])
    + unknown_paper_rows(config["models"], config["tables"]["paper"])
    + conflict_map_gaps(
        config["tokens"]["voice_quality"]["order"],
        config["interventions"]["conflict_voice_quality"],
    )
)
# a null batch_size or resources.gpu means the backend's own (a transformers model: 1 GPU)
config["models"] = {m: with_backend_defaults(c) for m, c in config["models"].items()}


def corpora_table(corpora_config):
    """One row per corpus, sorted by name (deterministic target order)."""
    rows = []
    for name, cfg in corpora_config.items():
        demo = cfg["adapter"].startswith("demo-")
        root = f"resources/demo/{name}" if demo else cfg["root"]
        rows.append(
            {
                "corpus": name,
                "adapter": cfg["adapter"],
                "reader": cfg["adapter"].removeprefix("demo-"),
                "root": root,
                "demo": demo,
                "shards": cfg["shards"],
            }
        )
    return pd.DataFrame(rows).set_index("corpus", drop=False).sort_index()


def models_table(models_config):
    """One row per model, sorted by name."""
    rows = [{"model": name} | cfg for name, cfg in models_config.items()]
    return pd.DataFrame(rows).set_index("model", drop=False).sort_index()


# a missing sheet would leave its old manifest "up to date" (a missing input with
# outputs present), a missing checkpoint folder fail in every inference job. Checked where
# the run is planned, not again in each cluster job (a path may be mounted on some nodes)
if not workflow.remote_exec:
    fail_on(missing_sources(config["corpora"]) + missing_model_files(config["models"]))
corpora = corpora_table(config["corpora"])
models = models_table(config["models"])


def corpus_constraint():
    """Wildcard constraint matching exactly the configured corpus names."""
    return "|".join(map(re.escape, corpora.index))


def model_constraint():
    return "|".join(map(re.escape, models.index))


def log_exclusions():
    """After a run: per corpus, the utterances its manifest left out, counted by reason.

    They are recorded in excluded.parquet (and the manifest job's log); saying so at the
    end of every run means a mislabelled sheet cannot go unnoticed behind exit code 0.
    """
    for corpus in corpora.index:
        path = Path(f"results/{corpus}/excluded.parquet")
        try:
            note = exclusion_note(corpus, io.read_table(path, "excluded"), path)
        except Exception:  # not built yet, or left empty by a `--touch` run
            continue
        if note:
            logger.info(note)


def log_feature_statuses():
    """After a run: per corpus, the audio files not analysed as they sound, by status.

    A clipped or too-short file gets flagged or filled-in tokens, not an error: its
    count belongs beside the exclusions, not only in one of hundreds of shard logs.
    """
    from cueprobe.features import status_note  # here: planning does not need it

    for corpus in corpora.index:
        path = Path(f"results/{corpus}/features.parquet")
        try:
            statuses = pd.read_parquet(path, columns=["status"])["status"]
        except Exception:  # not built yet, or left empty by a `--touch` run
            continue
        note = status_note(corpus, statuses, path)
        if note:
            logger.info(note)


def log_answer_alarms():
    """After a run: per (corpus, model), audio-only answers unfit to read the verdicts by.

    Most of them unparsed (a wrong prompt, answer_pattern or max_new_tokens), or one label
    for every clip (the model may not hear the audio): the run ends with exit code 0 and
    ordinary-looking tables, so the warning comes here, not only in summary.md.
    """
    from cueprobe.summary import answer_alarms  # here: planning does not need it

    for corpus in corpora.index:
        for model in models.index:
            where = Path(f"results/{corpus}/evaluation/{model}")
            try:
                alarms = answer_alarms(
                    io.read_table(where / "metrics.parquet", "metrics"),
                    io.read_table(where / "confusion.parquet", "confusion"),
                )
            except Exception:  # not evaluated yet, or left empty by a `--touch` run
                continue
            for split, texts in alarms.items():
                for text in texts:
                    logger.warning(
                        f"{corpus}, {model}, {split}: {text} (see {where}/summary.md)"
                    )


def release_scheduler_timers():
    """Cancel the wake-up timers Snakemake's scheduler left running, so the run exits now.

    After each scheduling pass the scheduler starts a non-daemon ``threading.Timer`` of
    ``--max-jobs-per-timespan``'s timespan (default ``100/1s``) whose only effect is to
    wake the scheduler again. Once the workflow has finished or failed, the interpreter
    still waits for the last one before exiting: ~1 s after every run that ran jobs
    (measured: 1.35 s from the last job to exit, 0.4 s without the timer), a minute
    with a profile's ``10/1m``, an hour with ``100/1h`` (and ``100/100ms`` parses as
    100 minutes); SIGTERM does not end that wait. Only timers whose callback comes from
    Snakemake's scheduler module are cancelled: all they would do is wake a scheduler
    that has stopped.
    """
    import threading

    for thread in threading.enumerate():
        callback = getattr(thread, "function", None)
        if isinstance(thread, threading.Timer) and (
            getattr(callback, "__module__", None)
            == "snakemake.scheduling.job_scheduler"
        ):
            thread.cancel()


def get_final_output():
    """Everything `snakemake` builds by default."""
    targets = expand("results/{corpus}/manifest.parquet", corpus=corpora.index)
    targets += get_token_outputs()
    targets += get_predictions_output()
    targets += get_evaluation_output()
    return targets


# --- corpus stage -------------------------------------------------------------


def get_corpus_source(wildcards):
    """Files the manifest is read from, so that Snakemake sees a changed corpus."""
    row = corpora.loc[wildcards.corpus]
    if row["demo"]:
        return f"{row['root']}/generating_params.csv"
    if row["reader"] == "iemocap":
        # the EmoEvaluation files (151 in IEMOCAP: globbed in milliseconds), so that an
        # edited label re-runs the manifest; the wav files are not tracked
        return [str(p) for p in emo_evaluation_files(row["root"])]
    return str(corpus_source(config["corpora"][wildcards.corpus]))  # sheet, label file


def get_demo_layout(wildcards):
    return corpora.loc[wildcards.corpus, "reader"]


def get_demo_option(key):
    def lookup(wildcards):
        return config["corpora"][wildcards.corpus]["demo"][key]

    return lookup


def get_corpus_root(wildcards):
    return corpora.loc[wildcards.corpus, "root"]


def get_corpus_adapter(wildcards):
    return corpora.loc[wildcards.corpus, "reader"]


def get_labels_json(wildcards):
    """The class set with its answer synonyms, as one JSON argument."""
    return json.dumps(corpus_labels(config["corpora"][wildcards.corpus]))


def get_label_names_json(wildcards):
    """The class set without synonyms: for the rules that never parse an answer, so that
    a new synonym re-runs inference only, not the manifest and every feature shard."""
    return json.dumps(
        {name: [] for name in corpus_labels(config["corpora"][wildcards.corpus])}
    )


def _aibo_only(wildcards, key, default):
    """A dev-split option of the aibo adapter; the default for the others (no re-run)."""
    cfg = config["corpora"][wildcards.corpus]
    return cfg[key] if corpora.loc[wildcards.corpus, "reader"] == "aibo" else default


def get_dev_speakers_json(wildcards):
    return json.dumps(_aibo_only(wildcards, "dev_speakers", None))


def get_n_dev_speakers(wildcards):
    return _aibo_only(wildcards, "n_dev_speakers", 2)


# --- interventions stage -----------------------------------------------------

from cueprobe.interventions import ConditionSpec

try:
    condition_spec = ConditionSpec(
        shuffle_seeds=tuple(config["interventions"]["shuffle_seeds"]),
        corrupt_p=tuple(config["interventions"]["corrupt_p"]),
        corrupt_seeds=tuple(config["interventions"]["corrupt_seeds"]),
    )
except ValueError as err:  # a p that is no whole percent: one line, not a traceback
    raise WorkflowError(f"config: {err}") from None
CONDITIONS = condition_spec.names()
#: the conditions with a token block: built, and answered, by one job per corpus (model)
TOKEN_CONDITIONS = [c for c in CONDITIONS if c != "audio_only"]


def condition_constraint():
    return "|".join(map(re.escape, CONDITIONS))


def get_conflict_map_json(wildcards):
    return json.dumps(config["interventions"]["conflict_voice_quality"], sort_keys=True)


# --- features and tokens stages -----------------------------------------------


def get_n_shards(wildcards):
    return int(corpora.loc[wildcards.corpus, "shards"])


def get_feature_shards(wildcards):
    """The shard tables of a corpus (files go to shards by a stable utt_id hash)."""
    return expand(
        "results/{corpus}/features/{shard}.parquet",
        corpus=wildcards.corpus,
        shard=range(get_n_shards(wildcards)),
    )


def get_gender_specific_json(wildcards):
    """Concepts with per-gender bin edges on this corpus, as one JSON argument."""
    return json.dumps(config["corpora"][wildcards.corpus]["gender_specific"])


def get_token_template(wildcards):
    """The token template (a function, so that its braces are not read as wildcards)."""
    return config["tokens"]["template"]


def figure_outputs(pattern, *, caption, category, subcategory, labels=None):
    """One report() output per configured format: a figure is drawn once, saved in each.

    ``pattern`` and the ``labels`` values may hold ``{ext}``.
    """
    outputs = []
    for ext in config["figures"]["formats"]:
        flagged = report(
            pattern.replace("{ext}", ext),
            caption=caption,
            category=category,
            subcategory=subcategory,
            labels={k: v.replace("{ext}", ext) for k, v in (labels or {}).items()}
            or None,
        )
        outputs.append(flagged)
    return outputs


#: Figure 3 (the corruption curve) exists only when the grid has corruption runs (a p
#: and a seed: `corrupt_seeds: []` left the figure planned, and its job failed last)
FIGURE3 = bool(condition_spec.corrupt_p and condition_spec.corrupt_seeds)


def corruption_curve_outputs(pattern, **kwargs):
    """Figure 3's files, or none when the grid has no corruption probabilities."""
    if not FIGURE3:
        return []
    return figure_outputs(pattern, **kwargs)


def get_corruption_curve_args(wildcards, output):
    """``--corruption-curve-out`` and Figure 3's files, or nothing (no Figure 3)."""
    files = output.corruption_curve
    if not files:
        return ""
    return shlex.join(["--corruption-curve-out", *files])


def get_token_outputs():
    """Tokens of every corpus, and Figure 1 in each configured format."""
    targets = expand("results/{corpus}/tokens.parquet", corpus=corpora.index)
    if config["figures"]["activate"]:
        targets += expand(
            "results/figures/{corpus}.token_distribution.{ext}",
            corpus=corpora.index,
            ext=config["figures"]["formats"],
        )
    return targets


# --- inference stage ----------------------------------------------------------


def _model_shards(model):
    return int(config["models"][model]["shards"])


def unsharded_model_constraint():
    """Models answered in one job per condition (`shards: 1`)."""
    names = [m for m in models.index if _model_shards(m) == 1]
    return "|".join(map(re.escape, names)) or "(?!)"


def sharded_model_constraint():
    """Models answered in several jobs per condition, one per utterance shard."""
    names = [m for m in models.index if _model_shards(m) > 1]
    return "|".join(map(re.escape, names)) or "(?!)"


#: the conditions each inference job answers: audio_only alone (it must never re-run
#: when the tokens change), and every token condition together
QUERY_GROUPS = {"audio_only": ["audio_only"], "tokens": TOKEN_CONDITIONS}


def get_prediction_shards(group):
    """The utterance-shard tables of one (corpus, model, group)."""

    def lookup(wildcards):
        return expand(
            "results/{corpus}/predictions/{model}/shards/{group}.shard{shard}.parquet",
            corpus=wildcards.corpus,
            model=wildcards.model,
            group=group,
            shard=range(_model_shards(wildcards.model)),
        )

    return lookup


def query_outputs(group, ext):
    """Per-condition outputs of one (corpus, model) inference job (wildcards kept)."""
    return expand(
        "results/{{corpus}}/predictions/{{model}}/{condition}.{ext}",
        condition=QUERY_GROUPS[group],
        ext=ext,
    )


def reference_model_constraint():
    """Models served by the trained reference backend (a never-matching pattern if none)."""
    names = [m for m in models.index if models.loc[m, "backend"] == "reference"]
    return "|".join(map(re.escape, names)) or "(?!)"


def get_predictions_output():
    """Predictions of every condition for every (corpus, model)."""
    return expand(
        "results/{corpus}/predictions/{model}/{condition}.parquet",
        corpus=corpora.index,
        model=models.index,
        condition=CONDITIONS,
    )


def get_query_inputs(group=None):
    """Manifest, condition tables and, for the reference model, its trained classifier.

    ``group`` is "audio_only" or "tokens" (None: the job's ``group`` wildcard).
    audio_only gets the audio-only classifier (which depends on the manifest alone), so
    re-binning the tokens never re-runs audio_only inference.
    """

    def lookup(wildcards):
        which = group or wildcards.group
        inputs = {
            "manifest": f"results/{wildcards.corpus}/manifest.parquet",
            "conditions": expand(
                "results/{corpus}/conditions/{condition}.parquet",
                corpus=wildcards.corpus,
                condition=QUERY_GROUPS[which],
            ),
            "model_files": [],
        }
        if config["models"][wildcards.model]["backend"] == "reference":
            kind = "audio" if which == "audio_only" else "tokens"
            inputs["model_files"] = [
                f"results/{wildcards.corpus}/models/{wildcards.model}/reference_{kind}.pkl",
                f"results/{wildcards.corpus}/embeddings/logmel.parquet",
            ]
        return inputs

    return lookup


def get_shard_args(wildcards):
    """`--shard k --n-shards n` for an utterance-shard job, else nothing."""
    if "shard" not in wildcards.keys():
        return ""
    return f"--shard {int(wildcards.shard)} --n-shards {_model_shards(wildcards.model)}"


def get_check_args(wildcards, output):
    """`--check-out <one per condition>` where the job writes checks (not for a shard)."""
    if "checks" not in output.keys():
        return ""
    return shlex.join(["--check-out", *output.checks])


def get_model_json(wildcards):
    """The model's answer-changing config keys, as one JSON argument."""
    return json.dumps(answer_config(config["models"][wildcards.model]), sort_keys=True)


@functools.cache
def _model_weights(model):
    return model_weights(config["models"][model])


def get_model_weights(wildcards):
    """The model's local checkpoint and adapter files, as digests ("" for a Hub id): new
    weights in a local folder re-run its inference jobs (read once per run)."""
    return _model_weights(wildcards.model)


def get_eval_splits_json(wildcards):
    """Splits this model is scored on in this corpus (the reference model: held-out only)."""
    zero_shot = config["models"][wildcards.model]["zero_shot"]
    return json.dumps(
        eval_splits(config["corpora"][wildcards.corpus], zero_shot=zero_shot)
    )


#: the prompt template each condition group reads
_GROUP_TEMPLATE = {"audio_only": "audio_only", "tokens": "with_tokens"}


def get_prompts_json(group=None):
    """The system text and the group's own template, as one JSON argument.

    ``group`` as in get_query_inputs. A function, not a string: a template's {labels} is
    no wildcard. Only the template the job reads is passed, so editing the token block of
    `with_tokens` never re-runs audio-only inference (an edit of the question is one to
    both templates, PromptTemplates checks it).
    """

    def lookup(wildcards):
        key = _GROUP_TEMPLATE[group or wildcards.group]
        prompts = {k: config["prompts"][k] for k in ("system", key)}
        return json.dumps(prompts, sort_keys=True)

    return lookup


def get_model_option(key):
    """A per-model config value (throughput knobs: batch size, the openai client's)."""

    def lookup(wildcards):
        return config["models"][wildcards.model][key]

    return lookup


def get_base_url(wildcards):
    """openai server URL ("none" for other backends: resources cannot be null)."""
    return config["models"][wildcards.model].get("base_url", "none")


def get_timeout_s(wildcards):
    """Client timeout in whole seconds, rounded up (resources are integers)."""
    import math

    return math.ceil(config["models"][wildcards.model]["timeout_s"])


def get_inference_resource(key):
    """Cluster resource of a model's inference jobs (config models.<m>.resources).

    A key the model does not set (slurm_partition, constraint) gives None, which
    Snakemake drops, default-resources included: such a job is submitted without a
    partition, to the cluster's default one (README, "Workstation, cluster and GPU models").
    """

    def lookup(wildcards):
        return config["models"][wildcards.model]["resources"].get(key)

    return lookup


def get_inference_env(wildcards):
    """transformers models need torch (alm env); the others run in the light env."""
    if config["models"][wildcards.model]["backend"] == "transformers":
        return "../../envs/alm.yaml"
    return "../../envs/cueprobe.yaml"


def get_reference_option(key):
    def lookup(wildcards):
        return config["models"][wildcards.model]["reference"][key]

    return lookup


# --- evaluation stage ---------------------------------------------------------

#: which paper table a corpus goes to, by its adapter (Aibo-style: dev/test columns)
_TABLE_OF_ADAPTER = {
    "aibo": "2",
    "demo-aibo": "2",
    "iemocap": "3",
    "demo-iemocap": "3",
    "csv": "3",
}


def table_corpora(table):
    """Corpora reported in Table II ("2") or III ("3")."""
    return [
        c
        for c in corpora.index
        if _TABLE_OF_ADAPTER[corpora.loc[c, "adapter"]] == table
    ]


def get_evaluation_output():
    """Per (corpus, model) evaluation + summary, the tables, and Figures 2-3."""
    targets = expand(
        "results/{corpus}/evaluation/{model}/summary.md",
        corpus=corpora.index,
        model=models.index,
    )
    targets += [
        f"results/tables/table{t}.{ext}"
        for t in ("2", "3")
        if table_corpora(t)
        for ext in ("csv", "md", "tex")
    ]
    if config["figures"]["activate"]:
        targets += expand(
            "results/figures/{corpus}/{model}.{figure}.{ext}",
            corpus=corpora.index,
            model=models.index,
            figure=["confusions", "corruption_curve"] if FIGURE3 else ["confusions"],
            ext=config["figures"]["formats"],
        )
    return targets


def get_evaluation_predictions(wildcards):
    """Every condition's predictions of one (corpus, model)."""
    return expand(
        "results/{corpus}/predictions/{model}/{condition}.parquet",
        corpus=wildcards.corpus,
        model=wildcards.model,
        condition=CONDITIONS,
    )


def get_table_evaluation(kind):
    """The metrics or comparisons tables of every (corpus, model) of one paper table."""

    def lookup(wildcards):
        return expand(
            "results/{corpus}/evaluation/{model}/{kind}.parquet",
            corpus=table_corpora(wildcards.table),
            model=models.index,
            kind=kind,
        )

    return lookup


def get_models_table_json(wildcards):
    """label, paper_row, zero_shot and group of every model, in config order (the
    tables' row order), as one JSON argument."""
    keys = ("label", "paper_row", "zero_shot", "group")
    return json.dumps({m: {k: c[k] for k in keys} for m, c in config["models"].items()})


def get_literature_json(wildcards):
    return json.dumps(config["tables"]["literature"], sort_keys=True)


def get_paper_json(wildcards):
    return json.dumps(config["tables"]["paper"], sort_keys=True)


def get_paper_corpora_json(wildcards):
    """The table's corpora read by the paper's own corpus's adapter
    (cueprobe.tables.PAPER_ADAPTER), as one JSON argument."""
    adapter = PAPER_ADAPTER[get_table_numeral(wildcards)]
    return json.dumps(
        [
            c
            for c in table_corpora(wildcards.table)
            if corpora.loc[c, "adapter"] == adapter
        ]
    )


def get_model_label(wildcards):
    return config["models"][wildcards.model]["label"] or wildcards.model


def get_table_numeral(wildcards):
    return {"2": "II", "3": "III"}[wildcards.table]


def get_figure_title(wildcards):
    return f"{get_model_label(wildcards)} on {wildcards.corpus}"
