# Evaluation stage: predictions -> metrics with speaker-clustered bootstrap CIs, exact
# McNemar tests (Holm), the corruption curve (Spearman) and a cue-use summary per
# (corpus, model), the paper's Tables II-III, and Figures 2-3 (one job per (corpus, model)).


rule evaluate_model:
    input:
        manifest="results/{corpus}/manifest.parquet",
        predictions=get_evaluation_predictions,
    output:
        metrics="results/{corpus}/evaluation/{model}/metrics.parquet",
        confusion="results/{corpus}/evaluation/{model}/confusion.parquet",
        comparisons="results/{corpus}/evaluation/{model}/comparisons.parquet",
        corruption="results/{corpus}/evaluation/{model}/corruption.parquet",
        summary=report(
            "results/{corpus}/evaluation/{model}/summary.md",
            caption="../report/summary.rst",
            category="Evaluation",
            subcategory="{corpus}",
            labels={"model": "{model}", "table": "cue-use summary"},
        ),
    log:
        "logs/evaluate_model/{corpus}/{model}.log",
    benchmark:
        "benchmarks/evaluate_model/{corpus}/{model}.tsv"
    priority: 2
    conda:
        "../../envs/cueprobe.yaml"
    params:
        labels=get_label_names_json,
        splits=get_eval_splits_json,
        n_resamples=config["evaluation"]["n_resamples"],
        confidence_level=config["evaluation"]["confidence_level"],
        seed=config["seed"],
        label=get_model_label,
        alpha=config["evaluation"]["alpha"],
    shell:
        "python -m cueprobe evaluate --manifest {input.manifest:q}"
        " --predictions {input.predictions:q}"
        " --labels {params.labels:q} --splits {params.splits:q}"
        " --n-resamples {params.n_resamples} --confidence-level {params.confidence_level}"
        " --seed {params.seed} --corpus {wildcards.corpus:q} --model {wildcards.model:q}"
        " --metrics-out {output.metrics:q} --confusion-out {output.confusion:q}"
        " --comparisons-out {output.comparisons:q} --corruption-out {output.corruption:q}"
        " --summary-out {output.summary:q} --label={params.label:q} --alpha {params.alpha}"
        " 2> {log:q}"


rule make_table:
    input:
        metrics=get_table_evaluation("metrics"),
        comparisons=get_table_evaluation("comparisons"),
    output:
        csv=report(
            "results/tables/table{table}.csv",
            caption="../report/tables.rst",
            category="Evaluation",
            subcategory="Tables",
            labels={"table": "Table {table}", "format": "csv"},
        ),
        md=report(
            "results/tables/table{table}.md",
            caption="../report/tables.rst",
            category="Evaluation",
            subcategory="Tables",
            labels={"table": "Table {table}", "format": "markdown"},
        ),
        tex=report(
            "results/tables/table{table}.tex",
            caption="../report/tables.rst",
            category="Evaluation",
            subcategory="Tables",
            labels={"table": "Table {table}", "format": "latex"},
        ),
    log:
        "logs/make_table/table{table}.log",
    benchmark:
        "benchmarks/make_table/table{table}.tsv"
    wildcard_constraints:
        table="2|3",
    conda:
        "../../envs/cueprobe.yaml"
    params:
        numeral=get_table_numeral,
        models=get_models_table_json,
        literature=get_literature_json,
        paper=get_paper_json,
        paper_corpora=get_paper_corpora_json,
        confidence_level=config["evaluation"]["confidence_level"],
    shell:
        "python -m cueprobe make-table --table {params.numeral:q}"
        " --metrics {input.metrics:q} --comparisons {input.comparisons:q}"
        " --models {params.models:q} --literature {params.literature:q}"
        " --paper {params.paper:q} --paper-corpora {params.paper_corpora:q}"
        " --confidence-level {params.confidence_level}"
        " --csv-out {output.csv:q} --md-out {output.md:q} --tex-out {output.tex:q} 2> {log:q}"


rule plot_evaluation:
    input:
        metrics="results/{corpus}/evaluation/{model}/metrics.parquet",
        confusion="results/{corpus}/evaluation/{model}/confusion.parquet",
        corruption="results/{corpus}/evaluation/{model}/corruption.parquet",
    output:
        confusions=figure_outputs(
            "results/figures/{corpus}/{model}.confusions.{ext}",
            caption="../report/figure2.rst",
            category="Evaluation",
            subcategory="{corpus}",
            labels={"model": "{model}", "figure": "Figure 2 ({ext})"},
        ),
        corruption_curve=corruption_curve_outputs(
            "results/figures/{corpus}/{model}.corruption_curve.{ext}",
            caption="../report/figure3.rst",
            category="Evaluation",
            subcategory="{corpus}",
            labels={"model": "{model}", "figure": "Figure 3 ({ext})"},
        ),
    log:
        "logs/plot_evaluation/{corpus}/{model}.log",
    benchmark:
        "benchmarks/plot_evaluation/{corpus}/{model}.tsv"
    priority: 1
    conda:
        "../../envs/cueprobe.yaml"
    params:
        title=get_figure_title,
        curve=get_corruption_curve_args,
        confidence_level=config["evaluation"]["confidence_level"],
    shell:
        "python -m cueprobe plot-evaluation --metrics {input.metrics:q}"
        " --confusion {input.confusion:q} --corruption {input.corruption:q}"
        " --title={params.title:q} --confidence-level {params.confidence_level}"
        " --confusions-out {output.confusions:q} {params.curve} 2> {log:q}"
