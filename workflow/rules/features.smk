# Features stage: manifest -> features/{shard}.parquet (eGeMAPSv02 LLD means) -> features.parquet.
# A shard job reads the manifest and extracts the files whose stable utt_id hash
# falls in its shard; a tokens change never reaches these rules. A rewritten
# manifest (a file added) re-runs every shard of that corpus: per-shard reruns
# would need the manifest as a checkpoint, which doubled every dry run at the
# 28k scale (bench/bench_planning.py: 3.0 s -> 6.2 s).


rule extract_features:
    input:
        manifest="results/{corpus}/manifest.parquet",
    output:
        "results/{corpus}/features/{shard}.parquet",
    log:
        "logs/extract_features/{corpus}/{shard}.log",
    benchmark:
        "benchmarks/extract_features/{corpus}/{shard}.tsv"
    priority: 2
    conda:
        "../../envs/opensmile.yaml"
    threads: 4
    params:
        n_shards=get_n_shards,
        min_duration_s=config["features"]["min_duration_s"],
    shell:
        "python -m cueprobe features --manifest {input.manifest:q}"
        " --shard {wildcards.shard} --n-shards {params.n_shards}"
        " --min-duration-s {params.min_duration_s} --threads {threads}"
        " --out {output:q} 2> {log:q}"


rule gather_features:
    input:
        manifest="results/{corpus}/manifest.parquet",
        shards=get_feature_shards,
    output:
        "results/{corpus}/features.parquet",
    log:
        "logs/gather_features/{corpus}.log",
    benchmark:
        "benchmarks/gather_features/{corpus}.tsv"
    priority: 2
    conda:
        "../../envs/opensmile.yaml"
    shell:
        "python -m cueprobe gather-features --manifest {input.manifest:q}"
        " --out {output:q} {input.shards:q} 2> {log:q}"
