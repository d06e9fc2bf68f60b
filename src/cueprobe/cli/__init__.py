"""``cueprobe <stage>``: one subcommand per pipeline stage.

Each stage lives in its own module under ``cueprobe.cli`` with ``register(sub)``
adding its parser and setting ``func``; a subcommand parses flags, reads inputs
through :mod:`cueprobe.io`, calls one library function and writes the outputs.
Exit codes: 0 ok, 1 validation error (one message, no traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: stage modules, in pipeline order; each must define ``register(subparsers)``
STAGES = (
    "corpus",
    "features",
    "tokens",
    "interventions",
    "inference",
    "evaluation",
)

log = logging.getLogger("cueprobe")


def one_per(values: Sequence, over: Sequence, *, flag: str, per: str) -> list:
    """``values`` of a list flag that pairs with another (``--out`` per ``--condition``).

    Raises ValueError naming both flags when the counts differ.
    """
    if len(values) != len(over):
        raise ValueError(f"{flag} needs one path per {per} ({len(over)}), got {len(values)}.")
    return list(values)


def number(kind: type, *, low: float | None = None, high: float | None = None, open_: bool = False):
    """An argparse ``type``: a ``kind`` (int or float) in ``[low, high]`` (``(low, high)``
    with ``open_``); out of range, argparse's error names the flag and the range.

    Examples
    --------
    >>> number(float, low=0, high=1, open_=True)("0.95")
    0.95
    >>> number(int, low=1)("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be >= 1, got 0
    """

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind.__name__}") from None
        if value != value or value in (float("inf"), float("-inf")):  # NaN passes every range
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if low is not None and (value <= low if open_ else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if open_ else '>='} {low}, got {text}")
        if high is not None and (value >= high if open_ else value > high):
            raise argparse.ArgumentTypeError(f"must be {'<' if open_ else '<='} {high}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


#: argparse types of the flags that recur
NATURAL = number(int, low=0)  # a seed, an index
COUNT = number(int, low=1)
LEVEL = number(float, low=0, high=1, open_=True)  # confidence level, alpha
SHARE = number(float, low=0, high=1)  # a probability that may be 0 or 1
POSITIVE = number(float, low=0, open_=True)  # a strength, a timeout


def nonempty(text: str) -> str:
    """An argparse ``type``: a string with at least one character."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def labels_json(text: str) -> dict[str, list[str]]:
    """An argparse ``type``: the class set as JSON, ``{label: [synonyms]}`` or a list of
    labels (no synonyms), in order.

    Examples
    --------
    >>> labels_json('["angry", "sad"]'), labels_json('{"sad": ["sadness"]}')
    ({'angry': [], 'sad': []}, {'sad': ['sadness']})
    """
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text[:60]!r}") from None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {v: [] for v in value}
    if isinstance(value, dict) and all(
        isinstance(v, list) and all(isinstance(w, str) for w in v) for v in value.values()
    ):
        return value
    raise argparse.ArgumentTypeError(
        f"must be a JSON list of labels or {{label: [synonyms]}}, got {text[:60]!r}"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``cueprobe`` argument parser with every stage's subcommands."""
    parser = argparse.ArgumentParser(prog="cueprobe", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        try:
            module = importlib.import_module(f"cueprobe.cli.{stage}")
        except ModuleNotFoundError as err:
            if err.name == f"cueprobe.cli.{stage}":
                continue  # stage not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cueprobe`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except (ValueError, OSError, KeyError) as err:
        # validation errors, and files that are not there or not readable (OSError is
        # also what from_pretrained raises for a checkpoint it cannot find): one clear
        # line, no traceback
        print(f"cueprobe {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0
