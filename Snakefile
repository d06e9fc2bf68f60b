# cueprobe: eGeMAPS concept tokens -> token interventions -> ALM predictions -> statistics.
# The stages, in pipeline order, are the included rule files. Priorities: model
# inference 3 (it holds the GPUs, the long pole of a real run), the other stages 2,
# figures 1 and tables 0 (no job waits for them; the longest of them first, so a
# figure does not start alone after the tables): with fewer cores than ready jobs,
# Snakemake runs the highest first and breaks ties arbitrarily.
from snakemake.utils import min_version

min_version("9.0")


# The demo config is the default; `--configfile my.yaml` replaces it, never extends it
# (which would keep the demo corpora beside yours), in every Snakemake process: a
# profile's `replace-workflow-config` is not passed on to cluster jobs (Snakemake 9.27).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    corpus=corpus_constraint(),
    model=model_constraint(),
    condition=condition_constraint(),
    shard=r"\d+",


include: "workflow/rules/corpus.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/tokens.smk"
include: "workflow/rules/interventions.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/evaluation.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


onsuccess:
    release_scheduler_timers()
    log_exclusions()
    log_feature_statuses()
    log_answer_alarms()


onerror:
    release_scheduler_timers()
    log_exclusions()  # a run that failed may fail for what its manifest left out
