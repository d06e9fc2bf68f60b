# Inference stage: the reference model is trained per corpus, then every model answers
# every condition. Two jobs per (corpus, model): audio_only alone (it never re-runs when
# the tokens change) and every token condition together, so a model is loaded once per
# corpus, not once per condition, and a prompt shared by several conditions (aligned and
# corrupt_p0_s*) is asked once. A job batches internally and appends each finished batch
# to its answer journal (predictions/{model}/journal/), which it keeps: a retry resumes,
# and a grid that gains a condition asks only the new prompts. The DAG stays small
# (corpora x models x 2 jobs, whatever the corpus size and the number of conditions).


# The reference model's log-mel embedding of every utterance, once per corpus: it depends
# on the audio alone, so training on new tokens and answering the token conditions never
# read audio again.
rule embed_reference_audio:
    input:
        manifest="results/{corpus}/manifest.parquet",
    output:
        "results/{corpus}/embeddings/logmel.parquet",
    log:
        "logs/embed_reference_audio/{corpus}.log",
    benchmark:
        "benchmarks/embed_reference_audio/{corpus}.tsv"
    priority: 2
    conda:
        "../../envs/cueprobe.yaml"
    shell:
        "python -m cueprobe embed-reference --manifest {input.manifest:q}"
        " --out {output:q} 2> {log:q}"


rule train_reference_audio:
    input:
        manifest="results/{corpus}/manifest.parquet",
        embeddings="results/{corpus}/embeddings/logmel.parquet",
    output:
        "results/{corpus}/models/{model}/reference_audio.pkl",
    log:
        "logs/train_reference_audio/{corpus}/{model}.log",
    benchmark:
        "benchmarks/train_reference_audio/{corpus}/{model}.tsv"
    wildcard_constraints:
        model=reference_model_constraint(),
    priority: 2
    conda:
        "../../envs/cueprobe.yaml"
    params:
        labels=get_label_names_json,
        C=get_reference_option("C"),
        class_weight=get_reference_option("class_weight"),
    shell:  # no --seed: only the token classifier's augmentation draws at random
        "python -m cueprobe train-reference --manifest {input.manifest:q}"
        " --embeddings {input.embeddings:q}"
        " --labels {params.labels:q} --C {params.C} --class-weight {params.class_weight}"
        " --out {output:q} 2> {log:q}"


rule train_reference_tokens:
    input:
        manifest="results/{corpus}/manifest.parquet",
        tokens="results/{corpus}/tokens.parquet",
        embeddings="results/{corpus}/embeddings/logmel.parquet",
    output:
        "results/{corpus}/models/{model}/reference_tokens.pkl",
    log:
        "logs/train_reference_tokens/{corpus}/{model}.log",
    benchmark:
        "benchmarks/train_reference_tokens/{corpus}/{model}.tsv"
    wildcard_constraints:
        model=reference_model_constraint(),
    priority: 2
    conda:
        "../../envs/cueprobe.yaml"
    params:
        labels=get_label_names_json,
        n_bins=config["tokens"]["n_bins"],
        template=get_token_template,
        separator=config["tokens"]["separator"],
        dropout=get_reference_option("token_dropout"),
        corrupt=get_reference_option("token_corrupt"),
        vq_order=json.dumps(config["tokens"]["voice_quality"]["order"]),
        C=get_reference_option("C"),
        class_weight=get_reference_option("class_weight"),
        seed=config["seed"],
    shell:
        "python -m cueprobe train-reference --manifest {input.manifest:q}"
        " --embeddings {input.embeddings:q} --tokens {input.tokens:q}"
        " --labels {params.labels:q} --n-bins {params.n_bins}"
        " --token-template={params.template:q} --token-separator={params.separator:q}"
        " --token-dropout {params.dropout} --token-corrupt {params.corrupt}"
        " --voice-quality-order {params.vq_order:q}"
        " --C {params.C} --class-weight {params.class_weight} --seed {params.seed}"
        " --out {output:q} 2> {log:q}"


rule query_token_conditions:
    input:
        unpack(get_query_inputs("tokens")),
    output:
        predictions=query_outputs("tokens", "parquet"),
        checks=query_outputs("tokens", "check.json"),
    log:
        "logs/query_token_conditions/{corpus}/{model}.log",
    benchmark:
        "benchmarks/query_token_conditions/{corpus}/{model}.tsv"
    wildcard_constraints:
        model=unsharded_model_constraint(),
    priority: 3
    conda:
        get_inference_env
    threads: get_inference_resource("threads")
    resources:
        gpu=get_inference_resource("gpu"),
        mem_mb=get_inference_resource("mem_mb"),
        runtime=get_inference_resource("runtime"),
        slurm_partition=get_inference_resource("slurm_partition"),
        constraint=get_inference_resource("constraint"),
        # throughput knobs: resources, not params, so changing them re-runs nothing
        base_url=get_base_url,
        batch_size=get_model_option("batch_size"),
        concurrency=get_model_option("concurrency"),
        max_retries=get_model_option("max_retries"),
        timeout_s=get_timeout_s,
        api_key_env=get_model_option("api_key_env"),  # the key's variable, not the answers
    params:
        model=get_model_json,
        weights=get_model_weights,  # not read by the job: new local weights re-run it
        labels=get_labels_json,
        splits=get_eval_splits_json,
        prompts=get_prompts_json("tokens"),
        journal="results/{corpus}/predictions/{model}/journal/tokens.jsonl",
        shards=get_shard_args,
        checks=get_check_args,
    shell:
        "python -m cueprobe infer --manifest {input.manifest:q} --condition {input.conditions:q}"
        " --model-files {input.model_files:q} --model-config {params.model:q}"
        " --labels {params.labels:q} --splits {params.splits:q} --prompts {params.prompts:q}"
        " --api-key-env {resources.api_key_env:q}"
        " --base-url {resources.base_url:q} --batch-size {resources.batch_size}"
        " --concurrency {resources.concurrency} --max-retries {resources.max_retries}"
        " --timeout-s {resources.timeout_s} --journal {params.journal:q} {params.shards}"
        " --out {output.predictions:q} {params.checks} 2> {log:q}"


use rule query_token_conditions as query_audio_only with:
    input:
        unpack(get_query_inputs("audio_only")),
    output:
        predictions=query_outputs("audio_only", "parquet"),
        checks=query_outputs("audio_only", "check.json"),
    log:
        "logs/query_audio_only/{corpus}/{model}.log",
    benchmark:
        "benchmarks/query_audio_only/{corpus}/{model}.tsv"
    params:
        prompts=get_prompts_json("audio_only"),
        journal="results/{corpus}/predictions/{model}/journal/audio_only.jsonl",


# A model with `shards: n > 1` answers each group in n jobs, one per shard of the
# evaluated utterances (stable utt_id hash), then one job per group splits the shard
# tables into per-condition predictions: more GPUs at once.
use rule query_token_conditions as query_model_shard with:
    input:
        unpack(get_query_inputs()),
    output:
        predictions="results/{corpus}/predictions/{model}/shards/{group}.shard{shard}.parquet",
    log:
        "logs/query_model_shard/{corpus}/{model}/{group}.shard{shard}.log",
    benchmark:
        "benchmarks/query_model_shard/{corpus}/{model}/{group}.shard{shard}.tsv"
    wildcard_constraints:
        model=sharded_model_constraint(),
        group="audio_only|tokens",
        shard=r"\d+",
    params:
        prompts=get_prompts_json(),
        journal="results/{corpus}/predictions/{model}/journal/{group}.shard{shard}.jsonl",


rule gather_token_predictions:
    input:
        get_prediction_shards("tokens"),
    output:
        predictions=query_outputs("tokens", "parquet"),
        checks=query_outputs("tokens", "check.json"),
    log:
        "logs/gather_token_predictions/{corpus}/{model}.log",
    benchmark:
        "benchmarks/gather_token_predictions/{corpus}/{model}.tsv"
    wildcard_constraints:
        model=sharded_model_constraint(),
    priority: 2
    conda:
        "../../envs/cueprobe.yaml"
    params:
        names=QUERY_GROUPS["tokens"],
    shell:
        "python -m cueprobe gather-predictions --parts {input:q} --condition {params.names}"
        " --out {output.predictions:q} --check-out {output.checks:q} 2> {log:q}"


use rule gather_token_predictions as gather_audio_only_predictions with:
    input:
        get_prediction_shards("audio_only"),
    output:
        predictions=query_outputs("audio_only", "parquet"),
        checks=query_outputs("audio_only", "check.json"),
    log:
        "logs/gather_audio_only_predictions/{corpus}/{model}.log",
    benchmark:
        "benchmarks/gather_audio_only_predictions/{corpus}/{model}.tsv"
    params:
        names=QUERY_GROUPS["audio_only"],
