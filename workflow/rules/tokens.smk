# Tokens stage: features.parquet -> tokens.parquet + token_edges.json (Table I), Figure 1.
# Every scalar that changes the tokens is a param, so editing n_bins, fit_on or a
# VOICE_QUALITY threshold re-runs assign_tokens and what depends on it, never features.


rule assign_tokens:
    input:
        features="results/{corpus}/features.parquet",
        manifest="results/{corpus}/manifest.parquet",
    output:
        tokens="results/{corpus}/tokens.parquet",
        edges=report(
            "results/{corpus}/token_edges.json",
            caption="../report/tokens_edges.rst",
            category="Concept tokens",
            subcategory="{corpus}",
        ),
    log:
        "logs/assign_tokens/{corpus}.log",
    benchmark:
        "benchmarks/assign_tokens/{corpus}.tsv"
    priority: 2
    conda:
        "../../envs/cueprobe.yaml"
    params:
        n_bins=config["tokens"]["n_bins"],
        fit_on=config["tokens"]["fit_on"],
        gender_specific=get_gender_specific_json,
        vq_threshold=config["tokens"]["voice_quality"]["threshold"],
        vq_unvoiced_floor=config["tokens"]["voice_quality"]["unvoiced_floor"],
        vq_order=json.dumps(config["tokens"]["voice_quality"]["order"]),
        template=get_token_template,
        separator=config["tokens"]["separator"],
    shell:
        "python -m cueprobe tokens --features {input.features:q} --manifest {input.manifest:q}"
        " --n-bins {params.n_bins} --fit-on {params.fit_on:q}"
        " --gender-specific {params.gender_specific:q}"
        " --vq-threshold {params.vq_threshold} --vq-unvoiced-floor {params.vq_unvoiced_floor}"
        " --vq-order {params.vq_order:q} --template={params.template:q}"
        " --separator={params.separator:q}"
        " --out {output.tokens:q} --edges-out {output.edges:q} 2> {log:q}"


rule plot_token_distribution:
    input:
        tokens="results/{corpus}/tokens.parquet",
        edges="results/{corpus}/token_edges.json",
        manifest="results/{corpus}/manifest.parquet",
    output:
        figure_outputs(
            "results/figures/{corpus}.token_distribution.{ext}",
            caption="../report/figure1.rst",
            category="Concept tokens",
            subcategory="{corpus}",
        ),
    log:
        "logs/plot_token_distribution/{corpus}.log",
    benchmark:
        "benchmarks/plot_token_distribution/{corpus}.tsv"
    priority: 1
    localrule: True
    conda:
        "../../envs/cueprobe.yaml"
    params:
        labels=get_label_names_json,
        title="{corpus}: concept tokens per emotion",
    shell:
        "python -m cueprobe plot-token-distribution --tokens {input.tokens:q}"
        " --edges {input.edges:q} --manifest {input.manifest:q}"
        " --labels {params.labels:q} --title={params.title:q} --out {output:q} 2> {log:q}"
