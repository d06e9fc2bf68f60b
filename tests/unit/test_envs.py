"""The conda environments of the rules: attached, exactly pinned, equal to the lock, complete.

Conda channels are not reachable here, so no environment is solved in CI; these
checks stand in for that: every pin is the lock's, every package the pins
require is pinned as well, and the code each kind of rule runs imports only
pinned distributions.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
ENVS = REPO / "envs"
LOCK = REPO / "requirements/lock.txt"
# Provided by the conda environment itself, not pinned in the pip block.
PROVIDED = {"pip", "setuptools", "wheel"}
# What each kind of rule needs, by distribution: corpus/features, tokens/analysis, inference.
NEEDS = {
    "opensmile.yaml": ["opensmile", "audiofile", "soundfile", "pandas", "pyarrow", "scipy"],
    "cueprobe.yaml": ["statsmodels", "matplotlib", "httpx", "pandas", "scipy"],
    "alm.yaml": ["torch", "transformers", "peft", "accelerate", "httpx", "scipy", "pandas"],
}
# cueprobe source files the rules of each environment run, all their imports counted
# (function-level ones too); every `python -m cueprobe` also loads cli/*.py at module level.
RUNS = {
    "opensmile.yaml": ["corpora/*.py", "features.py", "cli/corpus.py", "cli/features.py"],
    "cueprobe.yaml": [
        "tokens.py",
        "interventions.py",
        "evaluation.py",
        "stats.py",
        "metrics.py",
        "figures/*.py",
        "cli/tokens.py",
        "cli/interventions.py",
        "cli/evaluation.py",
        # the reference model and the openai client (inference without torch)
        "inference.py",
        "parsing.py",
        "prompts.py",
        "backends/base.py",
        "backends/reference.py",
        "backends/openai_compat.py",
    ],
    "alm.yaml": ["inference.py", "parsing.py", "prompts.py", "backends/*.py", "cli/inference.py"],
}
SRC = REPO / "src/cueprobe"


def normalize(name: str) -> str:
    """PEP 503 name: case, '-', '_' and '.' do not distinguish distributions."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[normalize(name)] = version
    return pins


def env_pins(env: dict) -> tuple[dict[str, str], dict[str, str]]:
    """(conda pins, pip pins) of an environment file, as {normalized name: version}."""
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                name, sep, version = spec.partition("==")
                assert sep and version and not re.search(r"[<>=!~*,; ]", version), (
                    f"pip entry {spec!r} is not an exact '==' pin"
                )
                pip[normalize(name)] = version
        else:
            name, sep, version = dep.partition("==")
            assert sep and version and not re.search(r"[<>=!~*,; ]", version), (
                f"conda entry {dep!r} is not an exact '==' pin"
            )
            conda[normalize(name)] = version
    return conda, pip


def missing_requirements(pins: dict[str, str]) -> dict[str, list[str]]:
    """Requirements (this platform, requested extras included) of the pins that are not pinned."""
    missing: dict[str, list[str]] = {}
    todo = [(name, "") for name in pins]
    seen = set()
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for line in md.requires(name) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue
            if extra and "extra" not in str(req.marker):
                continue  # the base requirements were visited with extra=""
            dep = normalize(req.name)
            if dep in PROVIDED:
                continue
            if dep not in pins:
                missing.setdefault(name, []).append(str(req))
                continue
            todo += [(dep, e) for e in req.extras]
    return missing


def imported_modules(path: Path, *, deep: bool) -> set[str]:
    """Absolute module names ``path`` imports; only module-level statements unless ``deep``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    names = set()
    todo = list(ast.walk(tree)) if deep else list(tree.body)
    while todo:
        node = todo.pop()
        if not deep and isinstance(node, (ast.If, ast.Try, ast.ClassDef, ast.With)):
            todo += list(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def source_of(module: str) -> Path | None:
    rel = Path(*module.split(".")[1:])
    for path in (SRC / rel).with_suffix(".py"), SRC / rel / "__init__.py":
        if path.is_file():
            return path
    return None


def imported_distributions(patterns: list[str]) -> set[str]:
    """Third-party distributions imported by the files matching ``patterns`` (and cli/*.py)."""
    deep = {p for pattern in patterns for p in SRC.glob(pattern)}
    todo = [(p, True) for p in deep] + [(p, False) for p in SRC.glob("cli/*.py")]
    seen, third_party = set(), set()
    while todo:
        path, is_deep = todo.pop()
        if (path, is_deep) in seen:
            continue
        seen.add((path, is_deep))
        for name in imported_modules(path, deep=is_deep):
            top = name.split(".")[0]
            if top == "cueprobe":
                if (source := source_of(name)) is not None:
                    todo.append((source, False))
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    by_module = md.packages_distributions()
    unknown = sorted(t for t in third_party if t not in by_module)
    assert not unknown, f"imported modules of no installed distribution: {unknown}"
    return {normalize(d) for t in third_party for d in by_module[t]}


def rule_envs(tmp_path: Path) -> list[tuple[str, Path | None, bool]]:
    """(rule, conda file or None, whether it runs code) for every rule and every kind of model.

    A ``conda:`` given as a function (per model backend) is evaluated for each model of a
    config that has one model of every backend.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings
    from snakemake.settings.types import OutputSettings
    from snakemake.settings.types import ResourceSettings
    from snakemake.settings.types import StorageSettings

    config = yaml.safe_load((REPO / "tests/e2e/config.yaml").read_text())
    config["models"] |= {
        "alm": {"backend": "transformers", "model_id": "org/alm", "architecture": "qwen2_audio"},
        "served": {"backend": "openai", "model_id": "alm", "base_url": "http://localhost:1/v1"},
    }
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[configfile]),
            storage_settings=StorageSettings(),
            snakefile=REPO / "Snakefile",
            workdir=tmp_path,
        )
        rules = []
        for rule in workflow._workflow.rules:
            runs_code = any((rule.shellcmd, rule.script, rule.notebook, rule.wrapper, rule.is_run))
            envs = [rule.conda_env]
            if callable(rule.conda_env):
                envs = [rule.conda_env(SimpleNamespace(model=m)) for m in config["models"]]
            for env in envs:
                conda = None if env is None else (Path(rule.snakefile).parent / env).resolve()
                rules.append((rule.name, conda, runs_code))
        return rules


LOCK_PINS = read_lock(LOCK.read_text())
ENV_FILES = sorted(ENVS.glob("*.yaml"))


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    return rule_envs(tmp_path_factory.mktemp("rules"))


def test_the_three_envs_exist():
    assert [p.name for p in ENV_FILES] == sorted(NEEDS)


def test_every_rule_that_runs_code_has_an_existing_env(rules):
    assert {conda.name for _, conda, _ in rules if conda} == set(NEEDS), "an env no rule uses"
    without = [name for name, conda, runs in rules if runs and conda is None]
    assert not without, f"rules without a conda: directive: {without}"
    absent = {name: str(conda) for name, conda, _ in rules if conda and not conda.is_file()}
    assert not absent, f"conda: files that do not exist: {absent}"
    outside = {name: str(conda) for name, conda, _ in rules if conda and conda.parent != ENVS}
    assert not outside, f"conda: files outside envs/: {outside}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_are_exact_and_equal_the_lock(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"], path.name
    conda, pip = env_pins(env)
    assert set(conda) == {"python", "pip"}, f"{path.name}: conda packages {sorted(conda)}"
    requires_python = md.metadata("cueprobe")["Requires-Python"]
    assert Version(conda["python"]) in SpecifierSet(requires_python), (
        f"{path.name}: python=={conda['python']} outside requires-python {requires_python}"
    )
    not_locked = sorted(set(pip) - set(LOCK_PINS))
    assert not not_locked, f"{path.name}: not in requirements/lock.txt: {not_locked}"
    differ = {n: (v, LOCK_PINS[n]) for n, v in pip.items() if v != LOCK_PINS[n]}
    assert not differ, f"{path.name}: (env, lock) versions differ: {differ}"


def test_envs_share_python_and_pip():
    conda = [env_pins(yaml.safe_load(p.read_text()))[0] for p in ENV_FILES]
    assert all(c == conda[0] for c in conda), conda


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_its_needs_and_all_they_require(path):
    _, pip = env_pins(yaml.safe_load(path.read_text()))
    absent = [n for n in NEEDS[path.name] if normalize(n) not in pip]
    assert not absent, f"{path.name} lacks {absent}"
    # The installed metadata is the lock's (`make install`), so requirements are the lock's.
    stale = {n: md.version(n) for n in pip if md.version(n) != pip[n]}
    assert not stale, f"installed versions differ from the lock: {stale}"
    missing = missing_requirements(pip)
    assert not missing, f"{path.name}: required but not pinned: {missing}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_every_distribution_its_rules_import(path):
    _, pip = env_pins(yaml.safe_load(path.read_text()))
    used = imported_distributions(RUNS[path.name]) - PROVIDED
    assert used <= set(pip), f"{path.name}: imported but not pinned: {sorted(used - set(pip))}"


def test_missing_requirements_names_the_unpinned():
    pins = {"pandas": md.version("pandas"), "numpy": md.version("numpy")}
    missing = missing_requirements(pins)
    assert set(missing) == {"pandas"}
    assert any(r.startswith("python-dateutil") for r in missing["pandas"])


def test_inexact_pin_is_rejected():
    with pytest.raises(AssertionError, match="not an exact '==' pin"):
        env_pins({"dependencies": ["python==3.11.7", {"pip": ["numpy>=2"]}]})


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_profiles_keep_pythonpath_in_conda_envs(profile):
    """Under --sdm conda Snakemake drops PYTHONPATH unless told not to: cueprobe lives on it."""
    settings = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    assert settings.get("conda-not-block-search-path-envvars") is True
