# Interventions stage: one table per (corpus, condition) with the token block of each
# utterance. audio_only depends on the manifest alone, so re-binning never touches it;
# the token conditions of a corpus are built by one job (one process start, one read).


rule build_audio_only_condition:
    input:
        manifest="results/{corpus}/manifest.parquet",
    output:
        "results/{corpus}/conditions/audio_only.parquet",
    log:
        "logs/build_audio_only_condition/{corpus}.log",
    benchmark:
        "benchmarks/build_audio_only_condition/{corpus}.tsv"
    priority: 2
    conda:
        "../../envs/cueprobe.yaml"
    shell:
        "python -m cueprobe condition --name audio_only --manifest {input.manifest:q}"
        " --out {output:q} 2> {log:q}"


rule build_token_conditions:
    input:
        manifest="results/{corpus}/manifest.parquet",
        tokens="results/{corpus}/tokens.parquet",
    output:
        expand(
            "results/{{corpus}}/conditions/{condition}.parquet",
            condition=TOKEN_CONDITIONS,
        ),
    log:
        "logs/build_token_conditions/{corpus}.log",
    benchmark:
        "benchmarks/build_token_conditions/{corpus}.tsv"
    priority: 2
    conda:
        "../../envs/cueprobe.yaml"
    params:
        names=TOKEN_CONDITIONS,
        n_bins=config["tokens"]["n_bins"],
        template=get_token_template,
        separator=config["tokens"]["separator"],
        vq_map=get_conflict_map_json,
        vq_order=json.dumps(config["tokens"]["voice_quality"]["order"]),
        seed=config["seed"],
    shell:
        "python -m cueprobe condition --name {params.names}"
        " --manifest {input.manifest:q} --tokens {input.tokens:q}"
        " --n-bins {params.n_bins} --template={params.template:q} --separator={params.separator:q}"
        " --voice-quality-map {params.vq_map:q} --voice-quality-order {params.vq_order:q}"
        " --seed {params.seed} --out {output:q} 2> {log:q}"
