# Corpus stage: (demo generation) -> manifest.parquet + excluded.parquet per corpus.


rule make_demo_corpus:
    output:
        "resources/demo/{corpus}/generating_params.csv",
    log:
        "logs/make_demo_corpus/{corpus}.log",
    benchmark:
        "benchmarks/make_demo_corpus/{corpus}.tsv"
    priority: 2
    conda:
        "../../envs/opensmile.yaml"
    params:
        layout=get_demo_layout,
        root=get_corpus_root,
        n_per_speaker=get_demo_option("n_per_speaker"),
        seed=get_demo_option("seed"),
    shell:
        "python -m cueprobe demo --layout {params.layout:q} --root {params.root:q}"
        " --n-per-speaker {params.n_per_speaker} --seed {params.seed} 2> {log:q}"


rule build_manifest:
    input:
        get_corpus_source,
    output:
        manifest="results/{corpus}/manifest.parquet",
        excluded="results/{corpus}/excluded.parquet",
    log:
        "logs/build_manifest/{corpus}.log",
    benchmark:
        "benchmarks/build_manifest/{corpus}.tsv"
    priority: 2
    conda:
        "../../envs/opensmile.yaml"
    params:
        adapter=get_corpus_adapter,
        root=get_corpus_root,
        labels=get_label_names_json,
        dev_speakers=get_dev_speakers_json,
        n_dev_speakers=get_n_dev_speakers,
    shell:
        "python -m cueprobe manifest --adapter {params.adapter:q} --root {params.root:q}"
        " --labels {params.labels:q} --dev-speakers {params.dev_speakers:q}"
        " --n-dev-speakers {params.n_dev_speakers}"
        " --out {output.manifest:q} --excluded-out {output.excluded:q} 2> {log:q}"
