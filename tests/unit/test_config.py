"""Config files validate against the schema; a mistyped key fails naming the key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


@pytest.mark.parametrize(
    "path", ["config/config.yaml", "config/paper.yaml", "tests/e2e/config.yaml"]
)
def test_shipped_configs_validate(path):
    config = yaml.safe_load((REPO / path).read_text())
    validate(config, str(SCHEMA))
    # defaults are filled in from the schema, nested ones included
    assert config["tokens"]["n_bins"] >= 2
    assert all("shards" in c for c in config["corpora"].values())


def _snakemake(*args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """This venv's snakemake (and, on PATH, its python) with ``args``."""
    bindir = Path(sys.executable).parent
    return subprocess.run(
        [bindir / "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ | {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"},
    )


def _dry_run(tmp_path: Path, config_text: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_text)
    return _snakemake(
        "-n", "--snakefile", REPO / "Snakefile", "--directory", tmp_path, "--configfile", cfg
    )


BASE = """
seed: 1
corpora:
  c1: {adapter: demo-iemocap%s}
models:
  reference: {backend: reference, zero_shot: false}
"""


def test_mistyped_key_fails_naming_it(tmp_path):
    proc = _dry_run(tmp_path, BASE % ", shardz: 3")
    assert proc.returncode != 0
    assert "'shardz' was unexpected" in proc.stdout + proc.stderr


def test_wrong_type_fails_naming_it(tmp_path):
    proc = _dry_run(tmp_path, BASE % ", shards: many")
    assert proc.returncode != 0
    assert "corpora.c1.shards: 'many' is not of type 'integer'" in proc.stdout + proc.stderr
    # in one line, not after snakemake.utils.validate's dump of the schema (784 lines for
    # a mistyped `models`)
    assert len((proc.stdout + proc.stderr).splitlines()) < 30


def test_a_float_where_an_integer_goes_fails_at_planning(tmp_path):
    """JSON Schema takes 3.0 for an integer: the tokens job then failed on
    `--n-bins 3.0`, after Snakemake had deleted its tokens table."""
    proc = _dry_run(tmp_path, (BASE + "tokens: {n_bins: 3.0}\n") % "")
    assert proc.returncode != 0
    assert "tokens.n_bins: 3.0 is not of type 'integer'" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # every condition would carry the same token block: the interventions void
        ('tokens: {template: "{concept}"}', "must contain both {concept} and {value}"),
        # the conditions job failed on it, after feature extraction
        ("seed: -1", "seed: -1 is less than the minimum of 0"),
        # level names past EXTREMELY_: "EXTREME2_LOW"
        ("tokens: {n_bins: 9}", "tokens.n_bins: 9 is greater than the maximum of 7"),
        # a clip without a voiced frame was MODAL
        ("tokens: {voice_quality: {unvoiced_floor: 0}}", "unvoiced_floor: 0 is less than or"),
        # RAVDESS-like classes sharing a synonym: "mad" was angry by list order
        (
            "  c2: {adapter: csv, root: %s, labels: {angry: [mad], happy: [glad, mad]}}",
            "corpora.c2.labels: 'mad' names angry and happy",
        ),
        # MSP-Podcast's "Other": its correct answers and the unparsed ones were one
        # confusion column, and a model answering "other" to everything raised no alarm
        (
            "  c2: {adapter: csv, root: %s, labels: {angry: [], Other: []}}",
            "corpora.c2.labels: 'Other' is the name of the answers outside the label set",
        ),
        # a sheet of test rows only: the token edges (fit_on: train) and the reference
        # model (trained on train) failed after every feature shard had run
        (
            "  c2: {adapter: csv, root: %s, labels: {angry: [], sad: []}}\ntokens: {fit_on: train}",
            "corpora.c2: tokens.fit_on is train, but the sheet",
        ),
        (
            "  c2: {adapter: csv, root: %s, labels: {angry: [], sad: []}}",
            "corpora.c2: the reference model(s) ['reference'] train on its train split, but",
        ),
        # scored on what it trains on: refused inside the job, after embedding and training
        (
            "  c2: {adapter: demo-aibo, eval_splits: {trained: [test, all]}}",
            "corpora.c2.eval_splits.trained: the reference model reference trains on the",
        ),
    ],
)
def test_token_settings_that_would_void_or_fail_a_run_fail_at_planning(tmp_path, config, message):
    text = (BASE % "").replace("seed: 1\n", "" if config.startswith("seed") else "seed: 1\n")
    if config.startswith("  c2"):  # a second corpus, under corpora (a sheet: test rows)
        (tmp_path / "s.csv").write_text("path,label,speaker,split\n/a.wav,angry,s1,test\n")
        corpus, _, config = (config % (tmp_path / "s.csv") if "%s" in config else config).partition(
            "\n"
        )
        text = text.replace("models:", corpus + "\nmodels:")
    proc = _dry_run(tmp_path, text + config + "\n")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-1500:]


def test_a_class_the_train_rows_lack_fails_at_planning_with_a_reference_model(tmp_path):
    """The reference classifier could never answer a class its train split lacks (it
    trained on the classes it saw, and was scored on all); the job now refuses it, after
    every feature shard, and planning says so first for a sheet."""
    sheet = tmp_path / "s.csv"
    sheet.write_text(
        "path,label,speaker,split\n/a.wav,Angry,s1,train\n/b.wav,sad,s2,test\n"
        "/c.wav,angry,s2,test\n"
    )
    corpus = f"  c2: {{adapter: csv, root: {sheet}, labels: {{angry: [], sad: []}}}}"
    text = (BASE % "").replace("models:", corpus + "\nmodels:")
    proc = _dry_run(tmp_path, text)
    assert proc.returncode != 0
    assert (
        "corpora.c2: the reference model(s) ['reference'] train on its train split, but the "
        "sheet's train rows have no class ['sad']"
    ) in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-1500:]


def test_a_sheet_labelled_with_the_synonyms_is_told_what_its_train_rows_hold(tmp_path):
    """A sheet whose label column holds synonyms (anger for angry) got only "leave it out
    of labels, or give the train split speakers who have it": wrong advice; the message
    now names the rows' own classes and says the column holds class names."""
    from cueprobe.config import adapter_conflicts

    sheet = tmp_path / "s.csv"
    sheet.write_text(
        "path,label,speaker,split\na.wav,anger,s1,train\nb.wav,Sad,s1,train\n"
        "c.wav,happiness,s1,train\nd.wav,sad,s2,test\n"
    )
    cfg = {"adapter": "csv", "root": str(sheet), "labels": {"angry": ["anger"], "sad": []}}
    refs = {"reference": {"backend": "reference", "zero_shot": False}}
    (problem,) = adapter_conflicts({"c": cfg}, refs)
    assert problem.endswith(
        "sheet's train rows have no class ['angry']: the classifier could never answer it; "
        "leave it out of labels, or give the train split speakers who have it; its train "
        "rows hold ['anger', 'happiness'], which are not classes of labels (the label "
        "column holds the class names; the synonyms only match a model's answers)"
    )
    sheet.write_text("path,label,speaker,split\na.wav,sad,s1,train\nd.wav,angry,s2,test\n")
    (problem,) = adapter_conflicts({"c": cfg}, refs)
    assert problem.endswith("give the train split speakers who have it")
    # a blank label cell, or a class written in capitals, is no synonym the rows hold
    sheet.write_text(
        "path,label,speaker,split\na.wav,sad,s1,train\nb.wav,,s1,train\nd.wav,angry,s2,test\n"
    )
    for labels in (cfg["labels"], {"Angry": [], "Sad": []}):
        (problem,) = adapter_conflicts({"c": cfg | {"labels": labels}}, refs)
        assert problem.endswith("give the train split speakers who have it"), problem


def test_gender_specific_bins_on_a_sheet_of_other_genders_fail_at_planning(tmp_path):
    """Genders that are neither F nor M (here `child`) pooled every edge after the feature
    stage; a mutant that only refused an all-`unknown` sheet passed."""
    sheet = tmp_path / "s.csv"
    sheet.write_text("path,label,speaker,gender,split\n/a.wav,angry,s1,child,test\n")
    corpus = f"  c2: {{adapter: csv, root: {sheet}, labels: {{angry: [], sad: []}}, gender_specific: [PITCH]}}"
    text = (BASE % "").replace("models:", corpus + "\nmodels:")
    proc = _dry_run(tmp_path, text)
    assert proc.returncode != 0
    assert (
        "corpora.c2.gender_specific: no row of the sheet" in proc.stdout + proc.stderr
        and "{'child': 1}" in proc.stdout + proc.stderr
    ), (proc.stdout + proc.stderr)[-1500:]


def test_no_corruption_seed_plans_no_figure_3(tmp_path):
    """`corrupt_seeds: []` beside a corrupt_p left Figure 3 planned; its job, the last
    of the run, failed on an empty corruption table."""
    config = BASE % "" + "interventions: {corrupt_p: [0.5], corrupt_seeds: []}\n"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config)
    proc = _snakemake(
        "-n", "-p", "--snakefile", REPO / "Snakefile", "--directory", tmp_path, "--configfile", cfg
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cueprobe plot-evaluation" in proc.stdout
    assert "--corruption-curve-out" not in proc.stdout


def test_a_missing_sheet_or_checkpoint_fails_at_planning(tmp_path):
    """A missing input with its outputs present is "up to date" to Snakemake: a mistyped
    sheet path served the old manifest and results with exit code 0."""
    sheet = tmp_path / "sheet.csv"
    text = (BASE + "  alm: {backend: transformers, model_id: %s, architecture: qwen2_audio}\n") % (
        "",
        tmp_path / "no-ckpt",
    )
    text = text.replace(
        "{adapter: demo-iemocap}",
        f"{{adapter: csv, root: {sheet}, labels: {{sad: [], angry: []}}}}",
    )
    proc = _dry_run(tmp_path, text)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"corpora.c1.root: {sheet} does not exist (adapter csv reads it)" in out
    assert f"models.alm.model_id: {tmp_path / 'no-ckpt'} does not exist" in out


def test_a_relative_checkpoint_path_without_dot_slash_is_checked_at_planning(tmp_path):
    """`model_id: ckpts/qwen/audio` run from a folder where it is absent became a Hub id:
    the dry run passed and the GPU job retried the Hub, then failed with "couldn't
    connect to huggingface.co". A Hub id is `name` or `org/name`: two slashes, a Windows
    separator or a trailing slash make a path. A folder named like a Hub id's
    organisation (`hf download --local-dir Qwen/...` made it) does not."""
    (tmp_path / "Qwen" / "Qwen2-Audio-7B-Instruct").mkdir(parents=True)
    model = "  {name}: {{backend: transformers, model_id: '{id}', architecture: qwen2_audio}}\n"
    bad = [("a", "ckpts/qwen/audio"), ("b", "ckpts\\qwen"), ("c", "ckpt/")]
    hub = [("d", "Qwen/Qwen2.5-Omni-7B"), ("e", "Qwen/Qwen2-Audio-7B-Instruct")]
    proc = _dry_run(tmp_path, BASE % "" + "".join(model.format(name=n, id=i) for n, i in bad))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"models.a.model_id: ckpts/qwen/audio does not exist in {tmp_path} (the folder" in out
    where = f"; read from {tmp_path}, where the workflow runs (--directory): write it absolute)"
    assert f"models.b.model_id: ckpts\\qwen does not exist (a local checkpoint folder{where}" in out
    assert f"models.c.model_id: ckpt/ does not exist (a local checkpoint folder{where}" in out
    ok = _dry_run(tmp_path, BASE % "" + "".join(model.format(name=n, id=i) for n, i in hub))
    assert ok.returncode == 0, ok.stderr


def test_a_relative_root_that_is_absent_says_where_it_was_read_from(tmp_path):
    """A relative `root` is read from the workflow's --directory, not from the shell's
    folder or the config's: "does not exist" alone sent users looking at the right file."""
    text = (BASE % "").replace(
        "{adapter: demo-iemocap}", "{adapter: csv, root: mine/sheet.csv, labels: {a: [], b: []}}"
    )
    proc = _dry_run(tmp_path, text)
    assert proc.returncode != 0
    assert (
        "corpora.c1.root: mine/sheet.csv does not exist (adapter csv reads it; read from "
        f"{tmp_path}, where the workflow runs (--directory): write it absolute)"
    ) in proc.stdout + proc.stderr


def test_real_corpus_needs_a_root(tmp_path):
    proc = _dry_run(tmp_path, BASE.replace("demo-iemocap", "iemocap") % "")
    assert proc.returncode != 0
    assert "'root' is a required property" in proc.stdout + proc.stderr


@pytest.mark.parametrize("profile", [[], ["--workflow-profile", "none"]])
def test_configfile_replaces_the_default(tmp_path, profile):
    """The demo corpora of config/config.yaml must not be merged into a user's config,
    in any Snakemake process. The profiles' `replace-workflow-config` did it in the main
    process only: a cluster job starts without it (Snakemake 9.27 does not pass it on),
    merged the demo corpora in, and Tables II-III of paper.yaml failed on SLURM, waiting
    for demo_* evaluations."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE % "")
    proc = _snakemake("-n", "--configfile", cfg, *profile)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "config/config.yaml is" not in out  # neither extended nor replaced: not read
    assert "demo_aibo" not in out


def test_model_resources_reach_the_inference_jobs(tmp_path):
    config = BASE.replace(
        "reference: {backend: reference, zero_shot: false}",
        "reference: {backend: reference, zero_shot: false, resources: "
        "{gpu: 0, mem_mb: 3000, runtime: 7, slurm_partition: gpu, constraint: a100}}",
    )
    proc = _dry_run(tmp_path, config % "")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    jobs = re.findall(
        r"^rule query_(?:audio_only|token_conditions):\n.*?^    resources: ([^\n]*)",
        out,
        re.M | re.S,
    )
    assert jobs
    for resources in jobs:
        assert "mem_mb=3000" in resources and "runtime=7" in resources
        assert "slurm_partition=gpu" in resources and "constraint=a100" in resources


def test_slurm_profile_groups_name_every_rule():
    """A renamed rule must not silently fall out of its SLURM group (it would then cost
    one sbatch submission, ~5 s, per job); a stale name must not linger either."""
    proc = _snakemake("--list-rules", "--snakefile", REPO / "Snakefile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rules = set(proc.stdout.split()) - {"all"}
    assert {"evaluate_model", "plot_evaluation", "query_token_conditions"} <= rules
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    # make_table reads every model of a corpus: grouped, it joined their evaluations
    assert set(profile["groups"]) == rules - {"make_table"}
    assert set(profile["groups"].values()) == set(profile["group-components"])


TRANSFORMERS = """
  alm: {backend: transformers, model_id: Org/Model, architecture: qwen2_audio, batch_size: 3}
"""


def _shell_commands(proc: subprocess.CompletedProcess, rule: str) -> list[str]:
    """The shell commands a dry run with --printshellcmds shows for ``rule``'s jobs."""
    out = proc.stdout + proc.stderr
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    return [b for b in blocks if re.match(rf"(?:local)?rule {rule}:", b)]


def _query_jobs(tmp_path: Path) -> dict[str, str]:
    """Per model (alm, reference), the token-conditions query job a dry run of the
    config in ``tmp_path`` shows."""
    proc = _snakemake(
        "results/c1/predictions/alm/aligned.parquet", "results/c1/predictions/reference/aligned.parquet",
        "-n", "-p", "--snakefile", REPO / "Snakefile", "--directory", tmp_path, "--configfile",
        tmp_path / "c.yaml",
    )  # fmt: skip
    return {
        re.search(r"wildcards: .*model=(\w+)", job)[1]: job
        for job in _shell_commands(proc, "query_token_conditions")
    }


def test_batch_size_reaches_the_job_as_a_knob_not_as_an_answer_key(tmp_path):
    # the answer journal is keyed by what the model read and its decoding: a smaller
    # batch for a smaller GPU must re-run nothing, so batch_size is no param
    proc = _dry_run(tmp_path, (BASE + TRANSFORMERS) % "")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _query_jobs(tmp_path)
    assert "--batch-size 3" in jobs["alm"]
    config = re.search(r"--model-config '(\{.*?\})'", jobs["alm"])[1]
    assert "model_id" in config and "batch_size" not in config
    # unset (null): the backend's own default, 64 for the reference classifier
    assert "--batch-size 64" in jobs["reference"]


def test_answer_pattern_reaches_the_job_only_when_set(tmp_path):
    # a pattern that is no regex fails at planning, naming the model's key
    bad = BASE + "  alm: {backend: reference, answer_pattern: '(?s)</think>(.*'}\n"
    proc = _dry_run(tmp_path, bad % "")
    assert proc.returncode != 0
    assert "models.alm.answer_pattern: answer_pattern '(?s)</think>(.*' is not" in (
        proc.stdout + proc.stderr
    )
    # set: an answer key (a change re-parses); null, the default: absent, so results made
    # before the key existed keep their params and do not re-run
    good = BASE + "  alm: {backend: reference, zero_shot: false, answer_pattern: '(\\w+)$'}\n"
    assert _dry_run(tmp_path, good % "").returncode == 0
    jobs = _query_jobs(tmp_path)
    assert (
        """--model-config '{"answer_pattern": "(\\\\w+)$", "backend": "reference"}'"""
        in jobs["alm"]
    )
    assert """--model-config '{"backend": "reference"}'""" in jobs["reference"]


@pytest.mark.parametrize(
    ("model", "missing"),
    [
        ("{backend: transformers, model_id: Org/Model}", "architecture"),
        ("{backend: transformers, architecture: qwen2_audio}", "model_id"),
        ("{backend: openai, model_id: served-name}", "base_url"),
    ],
)
def test_a_backend_without_its_required_keys_fails_at_planning(tmp_path, model, missing):
    proc = _dry_run(tmp_path, (BASE + f"  alm: {model}\n") % "")
    assert proc.returncode != 0
    assert f"'{missing}' is a required property" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "prompts: {with_tokens: 'Pick one of {labels}.'}",
            "prompts.with_tokens must use exactly the fields ['labels', 'tokens']",
        ),
        # worded apart, every comparison with audio_only would measure the wording too
        (
            "prompts: {with_tokens: 'You are an expert. {labels}? Cues: {tokens}'}",
            "prompts.with_tokens must be prompts.audio_only with one token block inserted",
        ),
        # read back from the name corrupt_p0_s0, 0.004 ran as aligned
        ("interventions: {corrupt_p: [0.004, 1.0]}", "corrupt_p: 0.004 is not a whole percent"),
        ("interventions: {shuffle_seeds: [0, 0]}", "has non-unique elements"),
    ],
)
def test_prompts_and_grid_the_names_cannot_carry_fail_at_planning(tmp_path, extra, message):
    proc = _dry_run(tmp_path, (BASE + extra + "\n") % "")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_a_conflict_map_the_voice_quality_order_cannot_meet_fails_at_planning(tmp_path):
    """An order without ROUGH left the default map's MODAL -> ROUGH: every conflicting
    block of a modal voice showed a value no aligned block ever shows."""
    order = "tokens: {voice_quality: {order: [UNVOICED, BREATHY, PRESSED]}}\n"
    proc = _dry_run(tmp_path, (BASE + order) % "")
    assert proc.returncode != 0
    assert (
        "interventions.conflict_voice_quality: MODAL -> ROUGH, a value "
        "tokens.voice_quality.order never gives (it gives UNVOICED, BREATHY, PRESSED, MODAL)"
    ) in proc.stdout + proc.stderr
    fixed = "interventions: {conflict_voice_quality: {MODAL: BREATHY, BREATHY: MODAL, "
    fixed += "PRESSED: BREATHY, UNVOICED: UNVOICED}}\n"
    assert _dry_run(tmp_path, (BASE + order + fixed) % "").returncode == 0


def test_reference_cli_defaults_agree_with_the_schema():
    from cueprobe.cli import build_parser

    schema = yaml.safe_load(SCHEMA.read_text())
    options = schema["$defs"]["model"]["properties"]["reference"]["properties"]
    sub = build_parser()._subparsers._group_actions[0].choices["train-reference"]
    defaults = {a.dest: a.default for a in sub._actions}
    for key in ("token_dropout", "token_corrupt"):
        assert defaults[key] == options[key]["default"], key


def _rule_graph(config: Path = REPO / "tests/e2e/config.yaml") -> dict[str, set[str]]:
    """Rule -> the rules it needs directly (``snakemake --rulegraph`` of ``config``)."""
    proc = _snakemake("--rulegraph", "--snakefile", REPO / "Snakefile", "--configfile", config)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', proc.stdout, flags=re.M))
    needs = {name: set() for name in names.values()}
    for src, dst in re.findall(r"^\s*(\d+) -> (\d+)$", proc.stdout, flags=re.M):
        needs[names[dst]].add(names[src])
    return needs


def test_jobs_nothing_waits_for_run_last_and_inference_first(tmp_path):
    """With fewer cores than ready jobs, Snakemake runs the highest priority first and
    breaks ties arbitrarily. With every priority 0 it drew Figure 1 before a corpus's
    inference, and that corpus's inference, evaluation and figures then ran on one core
    while the other idled. Figures (1) and tables (0), which no job waits for, now run
    when nothing else is ready, the longer figures first (a table first left a Figure 1
    to run alone at the end of the demo's re-run while the other core idled, 1.2 s);
    model inference (3), which holds the GPUs and is the long pole of a real run, starts
    before the CPU stages (2) that could wait for it."""
    config = yaml.safe_load((REPO / "tests/e2e/config.yaml").read_text())
    config["models"]["sharded"] = {"backend": "reference", "zero_shot": False, "shards": 2}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    needs = _rule_graph(path)
    proc = _snakemake(
        "-n", "-F", "-p", "--snakefile", REPO / "Snakefile", "--directory", tmp_path,
        "--configfile", path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    priority, infers = {}, set()
    for block in re.split(r"^(?:local)?rule ", proc.stdout, flags=re.M)[1:]:
        name = block.split(":", 1)[0]
        found = re.search(r"^\s+priority: (\d+)$", block, flags=re.M)
        assert priority.setdefault(name, int(found[1]) if found else 0) == priority[name]
        if "python -m cueprobe infer " in block:
            infers.add(name)
    assert set(priority) == set(needs)
    assert {"query_token_conditions", "query_audio_only", "query_model_shard"} <= infers
    waited_for = set().union(*(deps for rule, deps in needs.items() if rule != "all"))
    figures = {"plot_token_distribution", "plot_evaluation"}
    for rule in set(needs) - {"all"}:
        want = 3 if rule in infers else 2 if rule in waited_for else 1 if rule in figures else 0
        assert priority[rule] == want, rule
    assert {r for r in needs if priority[r] < 2} == {"all", "make_table"} | figures


def test_slurm_groups_never_make_manifest_only_work_wait_for_the_tokens(tmp_path):
    """A SLURM group job starts when all of its members' inputs exist. Audio-only work
    (its condition table, the reference model's embeddings and audio classifier, and so
    every model's audio-only inference) needs the manifest only, so a group job must not
    bundle it with work that needs the tokens, or it waits for every corpus's features."""
    needs = _rule_graph()

    def upstream(rule: str) -> set[str]:
        seen, todo = set(), [rule]
        while todo:
            for r in needs[todo.pop()] - seen:
                seen.add(r)
                todo.append(r)
        return seen

    token_work = {r for r in needs if r == "assign_tokens" or "assign_tokens" in upstream(r)}
    assert {"build_audio_only_condition", "embed_reference_audio"} <= set(needs) - token_work
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    groups = [f"{rule}={group}" for rule, group in profile["groups"].items()]
    sizes = [f"{group}={n}" for group, n in profile["group-components"].items()]
    proc = _snakemake(
        "-n", "--cores", "2", "--snakefile", REPO / "Snakefile", "--directory", tmp_path,
        "--configfile", REPO / "tests/e2e/config.yaml", "--groups", *groups,
        "--group-components", *sizes,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    blocks = re.split(r"^\[[^\]]*\] Group job ", proc.stdout, flags=re.M)[1:]
    assert blocks, proc.stdout[-2000:]
    for block in blocks:
        block = re.split(r"^\S", block.split("\n", 1)[1], maxsplit=1, flags=re.M)[0]
        members = set(re.findall(r"^\s+rule (\w+):", block, flags=re.M))
        # the token work this group job waits for, made outside it
        waits_for = {r for m in members for r in needs[m] if r in token_work} - members
        assert not (waits_for and members - token_work), (members - token_work, waits_for)
        # one (corpus, model) a job: bundled, a model's evaluation waited for the others'
        # inference and failed with theirs
        assert len(re.findall(r"^\s+rule evaluate_model:", block, flags=re.M)) <= 1


def test_planning_imports_cueprobe_from_the_checkout_it_runs(tmp_path):
    """The venv may hold another copy (an editable install of a sibling checkout): the
    plan must be made by the same code as the jobs, which run this checkout's src/."""
    import shutil

    copy = tmp_path / "checkout"
    copy.mkdir()
    for part in ("Snakefile", "workflow", "src", "config", "profiles"):
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy)(REPO / part, copy / part)
    prompts = copy / "src/cueprobe/prompts.py"
    prompts.write_text(prompts.read_text() + '\nraise RuntimeError("planned from the copy")\n')
    proc = _snakemake("-n", "--snakefile", copy / "Snakefile", cwd=copy)
    assert proc.returncode != 0
    assert "planned from the copy" in proc.stdout + proc.stderr


def test_a_transformers_model_takes_a_gpu_unless_its_config_says_otherwise(tmp_path):
    proc = _dry_run(tmp_path, (BASE + TRANSFORMERS) % "")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    jobs = re.findall(
        r"^rule query_(?:audio_only|token_conditions):\n.*?^    wildcards: ([^\n]*)\n"
        r"(?:^    priority: \d+\n)?(?:^    threads: \d+\n)?^    resources: ([^\n]*)",
        out,
        re.M | re.S,
    )
    gpus = {re.search(r"model=(\w+)", w)[1]: re.search(r"gpu=(\d+)", r)[1] for w, r in jobs}
    assert gpus == {"alm": "1", "reference": "0"}


def test_gender_specific_voice_quality_fails_at_planning(tmp_path):
    """VOICE_QUALITY is a rule, not bins: the schema took it and the tokens job failed."""
    proc = _dry_run(tmp_path, BASE % ", gender_specific: [PITCH, VOICE_QUALITY]")
    assert proc.returncode != 0
    assert (
        "corpora.c1.gender_specific.1: 'VOICE_QUALITY' is not one of" in proc.stdout + proc.stderr
    )


VQ_ORDER = "tokens: {voice_quality: {order: %s}}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # an empty dev split, or one the corpus lacks, failed evaluation after every
        # inference job had run
        (
            BASE.replace("demo-iemocap", "demo-aibo") % ", dev_speakers: []",
            "corpora.c1: trained models are scored on ['dev', 'test'] (the aibo default: set "
            "eval_splits), but the aibo adapter with dev_speakers: [] has no split 'dev'",
        ),
        (
            BASE % ", eval_splits: {zero_shot: [all], trained: [dev]}",
            "corpora.c1.eval_splits.trained: the iemocap adapter has no split 'dev'",
        ),
        # FAU-Aibo names no genders: the tokens job failed
        (
            BASE.replace("demo-iemocap", "demo-aibo") % ", gender_specific: [PITCH]",
            "corpora.c1.gender_specific: the aibo adapter has no speaker genders",
        ),
        # MODAL is the fallback: the tokens job failed, and Snakemake deleted the old tokens
        (
            BASE % "" + VQ_ORDER % "[UNVOICED, ROUGH, MODAL]",
            "tokens.voice_quality.order.2: 'MODAL' is not one of",
        ),
        (
            BASE % "" + VQ_ORDER % "[ROUGH, ROUGH]",
            "tokens.voice_quality.order: ['ROUGH', 'ROUGH'] has non-unique elements",
        ),
    ],
)
def test_faults_a_job_would_find_fail_at_planning(tmp_path, text, message):
    proc = _dry_run(tmp_path, text)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_aibo_without_a_dev_split_plans_when_only_test_is_scored(tmp_path):
    """dev_speakers: [] is the IS2009 challenge's split (Ohm train, Mont test); a kind of
    model the config has none of is not checked (zero_shot: the default [dev, test])."""
    aibo = BASE.replace("demo-iemocap", "demo-aibo")
    proc = _dry_run(tmp_path, aibo % ", dev_speakers: [], eval_splits: {trained: [test]}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_eval_splits_of_one_kind_keep_the_others_default(tmp_path):
    """Naming only zero_shot failed planning with a KeyError for the trained model."""
    proc = _dry_run(tmp_path, BASE % ", eval_splits: {zero_shot: [test]}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "KeyError" not in proc.stdout + proc.stderr


def test_a_csv_corpus_scored_on_a_split_its_sheet_lacks_fails_at_planning(tmp_path):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "path,label,speaker,split\na.wav,sad,s1,train\nc.wav,angry,s1,train\nb.wav,sad,s2,dev\n"
    )
    csv = f"c1: {{adapter: csv, root: {sheet}, labels: {{sad: [], angry: []}}%s}}"
    proc = _dry_run(tmp_path, BASE.replace("c1: {adapter: demo-iemocap%s}", csv) % "")
    assert proc.returncode != 0
    assert (
        "corpora.c1: trained models are scored on ['test'] (the csv default: set eval_splits), "
        f"but the sheet {sheet} has no split 'test' (it has dev, train)"
    ) in proc.stdout + proc.stderr
    text = BASE.replace("c1: {adapter: demo-iemocap%s}", csv) % ", eval_splits: {trained: [dev]}"
    proc = _dry_run(tmp_path, text)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_a_transformers_model_gets_an_alms_memory_runtime_and_cores_by_default(tmp_path):
    """The schema's 4000 MB and 60 min, meant for the reference model, went to a 7B ALM
    too (~16 GB to load in bf16; IEMOCAP's token conditions are ~150k prompts)."""
    proc = _dry_run(tmp_path, (BASE + TRANSFORMERS) % "")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    jobs = dict(
        re.findall(
            r"^rule query_token_conditions:\n.*?wildcards: corpus=\w+, model=(\w+).*?"
            r"^    resources: ([^\n]*)",
            out,
            re.M | re.S,
        )
    )
    assert "mem_mb=40000" in jobs["alm"] and "runtime=240" in jobs["alm"]
    assert "mem_mb=4000," in jobs["reference"] and "runtime=60" in jobs["reference"]
    # cores: an ALM job had 1 (OMP_NUM_THREADS=1: torch on one core, one CPU on SLURM)
    cfg = tmp_path / "c.yaml"
    proc = _snakemake("-n", "--cores", "8", "--snakefile", REPO / "Snakefile",
                      "--directory", tmp_path, "--configfile", cfg)  # fmt: skip
    threads = {
        re.search(r"model=(\w+)", block)[1]: re.search(r"^    threads: (\d+)$", block, re.M)
        for block in re.split(r"^\[", proc.stdout, flags=re.M)  # a job per "[date]" line
        if "rule query_token_conditions:" in block
    }
    assert threads["alm"][1] == "4" and threads["reference"] is None  # None: 1 thread


def test_the_tables_get_the_models_in_config_order(tmp_path):
    """Tables II-III list models as the config does (the paper's row order): the JSON
    handed to make-table keeps it (it was key-sorted, i.e. alphabetical)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text((BASE + TRANSFORMERS) % "")
    proc = _snakemake(
        "-n", "-p", "--snakefile", REPO / "Snakefile", "--directory", tmp_path, "--configfile",
        cfg,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (block,) = _shell_commands(proc, "make_table")
    models = json.loads(re.search(r"--models '([^']*)'", block)[1])
    assert list(models) == ["reference", "alm"]


def test_gender_specific_edges_on_a_sheet_without_genders_fail_at_planning(tmp_path):
    """A sheet without a gender column under gender_specific failed in the tokens job,
    after every feature shard had run; a sheet with F/M rows plans."""
    from cueprobe.config import adapter_conflicts

    sheet = tmp_path / "sheet.csv"
    sheet.write_text("path,label,speaker,split\na.wav,sad,s1,train\nb.wav,sad,s2,test\n")
    cfg = {
        "adapter": "csv",
        "root": str(sheet),
        "labels": {"sad": []},
        "gender_specific": ["PITCH"],
    }
    (problem,) = adapter_conflicts({"c": cfg}, {})
    assert problem == (
        f"corpora.c.gender_specific: no row of the sheet {sheet} has gender F or M (its "
        "genders: {'unknown': 2}); give the sheet a gender column (F/M, female/male...), "
        "or set gender_specific: []"
    )
    sheet.write_text("path,label,speaker,split,Gender\na.wav,sad,s1,train,female\n")
    assert adapter_conflicts({"c": cfg}, {}) == []
    assert adapter_conflicts({"c": cfg | {"gender_specific": []}}, {}) == []


def test_a_sheet_the_manifest_would_refuse_is_named_at_planning_not_its_splits(tmp_path):
    """A sheet saved with ';' between fields planned with "the sheet has no split
    'train' (it has test)"; the manifest job's own message (its columns) was the cause."""
    from cueprobe.config import adapter_conflicts

    sheet = tmp_path / "sheet.csv"
    sheet.write_text("Path;LABEL;Speaker;Split\na.wav;sad;s1;train\n")
    ref = {"reference": {"backend": "reference", "zero_shot": False}}
    csv = {"adapter": "csv", "root": str(sheet), "labels": {"sad": []}}
    assert adapter_conflicts({"c": csv}, ref) == [
        f"corpora.c.root: {sheet}: missing column(s) ['path', 'label', 'speaker']; it has "
        "['Path;LABEL;Speaker;Split']; fields are separated by ',' (this sheet's by ';'?)"
    ]
    # `Training` planned with "has none (it has dev, test, training): give it train rows"
    sheet.write_text("path,label,speaker,split\na.wav,sad,s1,Training\nb.wav,sad,s2,test\n")
    assert adapter_conflicts({"c": csv}, ref) == [
        f"corpora.c.root: {sheet}:2: split 'training' is not one of train, dev, test (any "
        "case; a sheet without a split column is all test)"
    ]


def test_a_csv_corpus_without_labels_fails_at_planning_naming_it(tmp_path):
    """It failed with an InputFunctionException traceback ending in "a csv corpus needs
    `labels:`", naming no corpus."""
    from cueprobe.config import adapter_conflicts

    sheet = tmp_path / "sheet.csv"
    sheet.write_text("path,label,speaker\na.wav,sad,s1\n")
    assert adapter_conflicts({"c": {"adapter": "csv", "root": str(sheet)}}, {}) == [
        "corpora.c.labels: a csv corpus needs its class set, each class with the answer "
        "synonyms the parser accepts (labels: {angry: [], sad: [sadness]})"
    ]


def test_a_base_url_without_its_scheme_fails_at_planning():
    """`localhost:8000/v1` passed planning, then every request was retried six times with
    httpx's UnsupportedProtocol ('localhost://')."""
    from cueprobe.config import schema_errors

    config = yaml.safe_load(BASE % "")
    config["models"]["alm"] = {
        "backend": "openai",
        "model_id": "m",
        "base_url": "localhost:8000/v1",
    }
    schema = yaml.safe_load(SCHEMA.read_text())
    (problem,) = schema_errors(config, schema)
    assert problem.startswith(
        "models.alm.base_url: 'localhost:8000/v1' does not match '^https?://'"
    )
    config["models"]["alm"]["base_url"] = "http://localhost:8000/v1"
    assert schema_errors(config, schema) == []


def test_the_configfile_hint_is_for_a_missing_top_level_key_only():
    """The hint that a --configfile replaces config/config.yaml explains a missing seed,
    corpora or models; on a corpus's missing adapter or a misspelt top-level key it
    would send the user to the wrong fix."""
    from cueprobe.config import schema_errors

    schema = yaml.safe_load(SCHEMA.read_text())
    config = yaml.safe_load(BASE % "")
    config["corpora"]["c1"] = {}
    config["tokenz"] = {"n_bins": 3}
    assert schema_errors(config, schema) == [
        "config: Additional properties are not allowed ('tokenz' was unexpected)",
        "corpora.c1: 'root' is a required property",
        "corpora.c1: 'adapter' is a required property",
    ]
    del config["seed"]
    assert schema_errors(config, schema)[:2] == [
        "config: Additional properties are not allowed ('tokenz' was unexpected)",
        "config: 'seed' is a required property (a --configfile replaces config/config.yaml: "
        "to change a few keys, give both, `--configfile config/config.yaml mine.yaml`)",
    ]


# -- the config fuzz review's findings: each passed planning (or failed with a traceback)


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        # a second block pasted at the end dropped every model of the first, exit code 0
        (
            BASE % "" + "models:\n  alm: {backend: openai, model_id: m, base_url: 'http://h/v1'}\n",
            r"c\.yaml, line 7: 'models' is written twice in one mapping \(first on line 5\)",
        ),
        # the user's root beside the demo adapter: synthetic audio, the root never read
        (
            BASE % ", root: /data/IEMOCAP_full_release",
            r"corpora\.c1\.root: the demo-iemocap adapter generates its audio .* set adapter: iemocap",
        ),
        (
            BASE % ", dev_speakers: [Ohm_01]",
            r"corpora\.c1\.dev_speakers: the demo-iemocap adapter does not read it \(FAU-Aibo's",
        ),
        # a LoRA named on an openai model: the server's model answered without it
        (
            BASE % ""
            + "  alm: {backend: openai, model_id: m, base_url: 'http://h/v1', adapter: /l}\n",
            r"models\.alm\.adapter: the openai backend does not read it .*--lora-modules",
        ),
        (
            BASE % "" + "  ref2: {backend: reference, zero_shot: false, label: reference}\n",
            r"models: reference and ref2 have the label 'reference'",
        ),
        # tracebacks naming no key
        (BASE % ", labels: {0: [], 1: []}", r"corpora\.c1\.labels: 0 is not text to YAML"),
        (
            BASE % ", labels: {no: [], angry: []}",
            r"labels: False is not text .* quote it as written, e.g. 'no'",
        ),
        (BASE.replace("c1:", "2024:") % "", r"corpora: 2024 is not text to YAML"),
        (
            BASE % "" + "interventions: {corrupt_p: [0.333]}\n",
            r"config: interventions\.corrupt_p: 0\.333 is not a whole percent",
        ),
        # late failures: after every inference job, or with a message blaming another key
        (BASE % ", eval_splits: {trained: [test, test]}", r"has non-unique elements"),
        (
            BASE % ""
            + "tables: {literature: [{table: II, name: C, uar: 0.3, source: s, split: all}]}\n",
            r"tables\.literature\.0\.split: 'all' is not one of \['dev', 'test'\]",
        ),
        (BASE % ", demo: {n_per_speaker: 4}", r"n_per_speaker: 4 is less than the minimum of 5"),
        (BASE % ", demo: {seed: -1}", r"demo\.seed: -1 is less than the minimum of 0"),
        (BASE % "" + "evaluation: {alpha: .nan}\n", r"evaluation\.alpha: nan is no number"),
        # YAML 1.1: a leading zero is octal, colons base 60 (the run used seed 34)
        (
            BASE.replace("seed: 1", "seed: 0042") % "",
            r"c\.yaml, line 2: 0042 is 34 to YAML \(octal\)",
        ),
        (BASE % "" + "tokens: {separator: ''}\n", r"tokens\.separator: '' should be non-empty"),
        (
            BASE % "" + "  alm: {backend: openai, model_id: '', base_url: 'http://h/v1'}\n",
            r"models\.alm\.model_id: '' should be non-empty",
        ),
    ],
)
def test_config_faults_fail_planning_naming_the_key(tmp_path, config_text, message):
    proc = _dry_run(tmp_path, config_text)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-1500:]
    assert re.search(message, out), out[-3000:]
    assert "Traceback" not in out


def test_free_text_that_starts_with_a_dash_reaches_the_job_as_itself(tmp_path):
    """A model label "-v2" or a template "-{concept}={value}" became an option to argparse
    (`--label -v2`: "expected one argument") in a job after inference."""
    import shlex

    from cueprobe.cli import build_parser

    text = BASE.replace("zero_shot: false}", "zero_shot: false, label: -v2}") % ""
    text += "tokens: {template: '-{concept}={value}', separator: ' -- '}\n"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    proc = _snakemake(
        "-n", "-p", "--snakefile", REPO / "Snakefile", "--directory", tmp_path, "--configfile", cfg
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = set()
    for line in proc.stdout.splitlines():
        command = line.removeprefix("Shell command: ").strip()
        if command.startswith("python -m cueprobe"):
            argv = shlex.split(command.split(" 2> ")[0])[3:]
            args = build_parser().parse_args(argv)
            for key in ("label", "title", "template", "token_template", "separator"):
                if getattr(args, key, None) is not None:
                    seen.add((key, getattr(args, key)))
    assert ("label", "-v2") in seen
    assert ("template", "-{concept}={value}") in seen and ("separator", " -- ") in seen
    assert ("token_template", "-{concept}={value}") in seen


def test_a_merge_key_does_not_end_the_duplicate_key_check():
    """`<<: *anchor` made the loader raise, and the check returned what it had so far."""
    from cueprobe.config import yaml_surprises

    text = (
        "seed: 1\nmodels:\n  a: &gpu {backend: transformers, resources: {gpu: 1}}\n"
        "  b:\n    <<: *gpu\n    backend: openai\n  c:\n    model_id: y\n    model_id: z\n"
    )
    assert yaml_surprises(text, "c.yaml") == [
        "c.yaml, line 9: 'model_id' is written twice in one mapping (first on line 8); "
        "YAML keeps only the last"
    ]


def test_a_base_file_key_an_override_cannot_unset_is_a_warning_not_a_refusal(tmp_path):
    """Several --configfile files merge: paper.yaml's `architecture` stays under an
    override that serves the model with vLLM, and config.yaml's `demo:` under one that
    points the corpus at a real root; both were refused, with no way to unset them."""
    root = tmp_path / "IEMOCAP"
    root.mkdir()
    override = tmp_path / "o.yaml"
    override.write_text(
        f"corpora:\n  c1: {{adapter: iemocap, root: {root}}}\nmodels:\n"
        "  alm: {backend: openai, model_id: m, base_url: 'http://h/v1', adapter: null}\n"
    )
    base = tmp_path / "base.yaml"
    base.write_text(
        (BASE % ", demo: {n_per_speaker: 6}")
        + "  alm: {backend: transformers, model_id: m, architecture: qwen2_audio, "
        "adapter: /no/lora}\n"
    )
    proc = _snakemake(
        "-n", "--snakefile", REPO / "Snakefile", "--directory", tmp_path,
        "--configfile", base, override,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "models.alm.architecture: ignored: the openai backend does not read it" in out
    assert "corpora.c1.demo: ignored: the iemocap adapter reads no demo options" in out
    assert "adapter: null" not in out and "models.alm.adapter" not in out  # null: no value
    assert "corpora.c1.root: /" not in out  # the real root is read


def test_a_config_beyond_ascii_plans_whatever_the_locale(tmp_path):
    """Planning read each config file in the locale's encoding to look for duplicate
    keys: a synonym `wütend` failed it with UnicodeDecodeError where Python runs without
    UTF-8 (Snakemake itself reads the config as UTF-8)."""
    text = BASE % ", labels: {angry: [wütend], sad: [traurig], happy: [], neutral: []}"
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [bindir / "snakemake", "-n", "--snakefile", REPO / "Snakefile", "--directory",
         tmp_path, "--configfile", tmp_path / "c.yaml"],
        capture_output=True, text=True, encoding="utf-8", errors="replace",
        env=os.environ  # Python in ASCII: no UTF-8 mode, C locale not coerced to C.UTF-8
        | {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
        | {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_the_papers_values_go_to_the_papers_corpora_only(tmp_path):
    """make-table gets, per table, the corpora the paper's adapter reads (IEMOCAP's for
    Table III, FAU-Aibo's for II): a CSV sheet or a demo beside them got the paper's
    IEMOCAP numbers on its rows."""
    (tmp_path / "iemo").mkdir()
    labels = tmp_path / "kids/labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
    labels.parent.mkdir(parents=True)
    labels.touch()
    sheet = tmp_path / "s.csv"
    rows = "a.wav,sad,s1,train\nb.wav,happy,s1,train\nc.wav,sad,s2,test\n"
    sheet.write_text("path,label,speaker,split\n" + rows)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
seed: 1
corpora:
  iemo: {{adapter: iemocap, root: {tmp_path / "iemo"}}}
  mine: {{adapter: csv, root: {sheet}, labels: {{sad: [], happy: []}}}}
  d: {{adapter: demo-iemocap}}
  kids: {{adapter: aibo, root: {tmp_path / "kids"}}}
  d2: {{adapter: demo-aibo}}
models:
  reference: {{backend: reference, zero_shot: false}}
"""
    )
    proc = _snakemake(
        "-n", "-p", "--snakefile", REPO / "Snakefile", "--directory", tmp_path, "--configfile",
        cfg,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    given = {
        re.search(r"--table (II+)", block)[1]: json.loads(
            re.search(r"--paper-corpora '([^']*)'", block)[1]
        )
        for block in _shell_commands(proc, "make_table")
    }
    assert given == {"II": ["kids"], "III": ["iemo"]}


def test_a_configfile_of_a_few_keys_alone_is_told_to_come_after_the_default(tmp_path):
    """`--configfile bins.yaml` replaces config/config.yaml (Snakemake's rule here), so
    a file of the keys to change, given alone, lacked seed, corpora and models: the
    message said so three times and not why."""
    proc = _dry_run(tmp_path, "tokens: {n_bins: 3}\n")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert (
        "config: 'seed' is a required property (a --configfile replaces config/config.yaml: "
        "to change a few keys, give both, `--configfile config/config.yaml mine.yaml`)"
    ) in out
    assert out.count("--configfile replaces") == 1
    assert "config: 'models' is a required property\n" in out


def test_an_edited_iemocap_label_file_is_an_input_of_the_manifest_job(tmp_path):
    """The IEMOCAP manifest job had no input: an edited EmoEvaluation file re-ran
    nothing (README asked for `-R build_manifest`). Its label files are its inputs now."""
    labels = tmp_path / "iemo/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text("% header\n")
    (labels.parent / "._Ses01F_impro01.txt").write_bytes(b"\x00")  # a macOS sidecar
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"seed: 1\ncorpora:\n  iemo: {{adapter: iemocap, root: {tmp_path / 'iemo'}}}\n"
        "models:\n  reference: {backend: reference, zero_shot: false}\n"
    )
    proc = _snakemake(
        "results/iemo/manifest.parquet", "-n", "--snakefile", REPO / "Snakefile",
        "--directory", tmp_path, "--configfile", cfg,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (block,) = _shell_commands(proc, "build_manifest")
    assert re.search(r"^    input: (.*)$", block, re.M)[1] == str(labels)
