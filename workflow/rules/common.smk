# Helpers that turn the validated config into targets, parameters and resources.
# Rules only wire files to `cueprobe` subcommands; every decision lives in src/.
import json
import os
import re
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

from cueprobe.corpora import corpus_labels
from cueprobe.corpora import eval_splits

validate(config, "../schemas/config.schema.yaml")

# Jobs run `python -m cueprobe` from this checkout, in the venv or in a conda
# env per kind of job alike (envs/README.md): the package is found on PYTHONPATH,
# which local and SLURM jobs inherit from this process.
_SRC = str(Path(workflow.basedir, "src").resolve())
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH", "")) if p)
)


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


corpora = corpora_table(config["corpora"])
models = models_table(config["models"])


def corpus_constraint():
    """Wildcard constraint matching exactly the configured corpus names."""
    return "|".join(map(re.escape, corpora.index))


def model_constraint():
    return "|".join(map(re.escape, models.index))


def get_final_output():
    """Everything `snakemake` builds by default."""
    targets = expand("results/{corpus}/manifest.parquet", corpus=corpora.index)
    return targets


# --- corpus stage -------------------------------------------------------------


def get_corpus_source(wildcards):
    """Files the manifest is read from, so that Snakemake sees a changed corpus."""
    row = corpora.loc[wildcards.corpus]
    if row["demo"]:
        return f"{row['root']}/generating_params.csv"
    if row["reader"] == "csv":
        return row["root"]
    if row["reader"] == "aibo":
        return (
            f"{row['root']}/labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
        )
    return []  # IEMOCAP: dozens of EmoEvaluation files; the tree is read as a whole


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


def get_dev_speakers_json(wildcards):
    return json.dumps(config["corpora"][wildcards.corpus]["dev_speakers"])


def get_n_dev_speakers(wildcards):
    return config["corpora"][wildcards.corpus]["n_dev_speakers"]


# --- interventions stage -----------------------------------------------------

from cueprobe.interventions import ConditionSpec

condition_spec = ConditionSpec(
    shuffle_seeds=tuple(config["interventions"]["shuffle_seeds"]),
    corrupt_p=tuple(config["interventions"]["corrupt_p"]),
    corrupt_seeds=tuple(config["interventions"]["corrupt_seeds"]),
)
CONDITIONS = condition_spec.names()


def token_condition_constraint():
    """The configured conditions that carry a token block (all but audio_only)."""
    return "|".join(re.escape(c) for c in CONDITIONS if c != "audio_only")


def condition_constraint():
    return "|".join(map(re.escape, CONDITIONS))


def get_conflict_map_json(wildcards):
    return json.dumps(config["interventions"]["conflict_voice_quality"], sort_keys=True)
