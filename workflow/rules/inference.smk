# Inference stage: the reference model is trained per corpus, then every model answers
# every condition. One job per (corpus, model, condition): it batches internally, appends
# each finished batch to a part file and resumes from it, so a retry is cheap and the DAG
# stays small (corpora x models x conditions jobs, whatever the corpus size).


rule train_reference_audio:
    input:
        manifest="results/{corpus}/manifest.parquet",
    output:
        "results/{corpus}/models/{model}/reference_audio.pkl",
    log:
        "logs/train_reference_audio/{corpus}/{model}.log",
    benchmark:
        "benchmarks/train_reference_audio/{corpus}/{model}.tsv"
    wildcard_constraints:
        model=reference_model_constraint(),
    conda:
        "../../envs/cueprobe.yaml"
    params:
        labels=get_labels_json,
        C=get_reference_option("C"),
        seed=config["seed"],
    shell:
        "python -m cueprobe train-reference --manifest {input.manifest:q}"
        " --labels {params.labels:q} --C {params.C} --seed {params.seed}"
        " --out {output:q} 2> {log:q}"


rule train_reference_tokens:
    input:
        manifest="results/{corpus}/manifest.parquet",
        tokens="results/{corpus}/tokens.parquet",
    output:
        "results/{corpus}/models/{model}/reference_tokens.pkl",
    log:
        "logs/train_reference_tokens/{corpus}/{model}.log",
    benchmark:
        "benchmarks/train_reference_tokens/{corpus}/{model}.tsv"
    wildcard_constraints:
        model=reference_model_constraint(),
    conda:
        "../../envs/cueprobe.yaml"
    params:
        labels=get_labels_json,
        n_bins=config["tokens"]["n_bins"],
        template=get_token_template,
        separator=config["tokens"]["separator"],
        dropout=get_reference_option("token_dropout"),
        corrupt=get_reference_option("token_corrupt"),
        C=get_reference_option("C"),
        seed=config["seed"],
    shell:
        "python -m cueprobe train-reference --manifest {input.manifest:q}"
        " --tokens {input.tokens:q} --labels {params.labels:q} --n-bins {params.n_bins}"
        " --token-template {params.template:q} --token-separator {params.separator:q}"
        " --token-dropout {params.dropout} --token-corrupt {params.corrupt}"
        " --C {params.C} --seed {params.seed} --out {output:q} 2> {log:q}"


rule query_model:
    input:
        unpack(get_query_inputs),
    output:
        predictions="results/{corpus}/predictions/{model}/{condition}.parquet",
        check="results/{corpus}/predictions/{model}/{condition}.check.json",
    log:
        "logs/query_model/{corpus}/{model}/{condition}.log",
    benchmark:
        "benchmarks/query_model/{corpus}/{model}/{condition}.tsv"
    wildcard_constraints:
        model=unsharded_model_constraint(),
    retries: 2
    conda:
        get_inference_env
    resources:
        gpu=get_inference_resource("gpu"),
        mem_mb=get_inference_resource("mem_mb"),
        runtime=get_inference_resource("runtime"),
        slurm_partition=get_inference_resource("slurm_partition"),
        constraint=get_inference_resource("constraint"),
        # openai client knobs: resources, not params, so changing them re-runs nothing
        base_url=get_base_url,
        concurrency=get_model_option("concurrency"),
        max_retries=get_model_option("max_retries"),
        timeout_s=get_timeout_s,
    params:
        model=get_model_json,
        labels=get_labels_json,
        splits=get_eval_splits_json,
        prompts=get_prompts_json,
        api_key_env=get_model_option("api_key_env"),
        seed=config["seed"],
    shell:
        "python -m cueprobe infer --manifest {input.manifest:q} --condition {input.condition:q}"
        " --model-files {input.model_files:q} --model-config {params.model:q}"
        " --labels {params.labels:q} --splits {params.splits:q} --prompts {params.prompts:q}"
        " --api-key-env {params.api_key_env:q} --seed {params.seed}"
        " --base-url {resources.base_url:q} --concurrency {resources.concurrency} --max-retries {resources.max_retries}"
        " --timeout-s {resources.timeout_s}"
        " --out {output.predictions:q} --check-out {output.check:q} 2> {log:q}"


# A model with `shards: n > 1` answers each condition in n jobs, one per shard of the
# evaluated utterances (stable utt_id hash), then one job joins them: more GPUs at once.
rule query_model_shard:
    input:
        unpack(get_query_inputs),
    output:
        "results/{corpus}/predictions/{model}/{condition}/shard{shard}.parquet",
    log:
        "logs/query_model_shard/{corpus}/{model}/{condition}/{shard}.log",
    benchmark:
        "benchmarks/query_model_shard/{corpus}/{model}/{condition}/{shard}.tsv"
    wildcard_constraints:
        model=sharded_model_constraint(),
        shard=r"\d+",
    retries: 2
    conda:
        get_inference_env
    resources:
        gpu=get_inference_resource("gpu"),
        mem_mb=get_inference_resource("mem_mb"),
        runtime=get_inference_resource("runtime"),
        slurm_partition=get_inference_resource("slurm_partition"),
        constraint=get_inference_resource("constraint"),
        base_url=get_base_url,
        concurrency=get_model_option("concurrency"),
        max_retries=get_model_option("max_retries"),
        timeout_s=get_timeout_s,
    params:
        model=get_model_json,
        labels=get_labels_json,
        splits=get_eval_splits_json,
        prompts=get_prompts_json,
        api_key_env=get_model_option("api_key_env"),
        seed=config["seed"],
        n_shards=get_model_option("shards"),
    shell:
        "python -m cueprobe infer --manifest {input.manifest:q} --condition {input.condition:q}"
        " --model-files {input.model_files:q} --model-config {params.model:q}"
        " --labels {params.labels:q} --splits {params.splits:q} --prompts {params.prompts:q}"
        " --api-key-env {params.api_key_env:q} --seed {params.seed}"
        " --base-url {resources.base_url:q} --concurrency {resources.concurrency} --max-retries {resources.max_retries}"
        " --timeout-s {resources.timeout_s}"
        " --shard {wildcards.shard} --n-shards {params.n_shards}"
        " --out {output:q} 2> {log:q}"


rule gather_predictions:
    input:
        get_prediction_shards,
    output:
        predictions="results/{corpus}/predictions/{model}/{condition}.parquet",
        check="results/{corpus}/predictions/{model}/{condition}.check.json",
    log:
        "logs/gather_predictions/{corpus}/{model}/{condition}.log",
    benchmark:
        "benchmarks/gather_predictions/{corpus}/{model}/{condition}.tsv"
    wildcard_constraints:
        model=sharded_model_constraint(),
    conda:
        "../../envs/cueprobe.yaml"
    shell:
        "python -m cueprobe gather-predictions --parts {input:q}"
        " --out {output.predictions:q} --check-out {output.check:q} 2> {log:q}"
