"""Command options from flags and/or a YAML or JSON config file. Keys of the file are the long flag names
with dashes or underscores (``batch_size: 16`` = ``--batch-size 16``); flags given on the command line
win over the file. An unknown key is an error that names the closest known one."""
from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

import yaml


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (an error naming the option otherwise, as argparse does)."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text, low: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
    if value < low or (not isinstance(text, str) and value != text):
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
    return value


def size_pair(text: str) -> tuple[int, int]:
    """argparse type: ``512`` (square) or ``512x1024`` (height x width), each >= 1."""
    parts = str(text).lower().split("x")
    try:
        pair = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be N or HxW with integers >= 1, got {text!r}") from None
    if len(pair) == 1:
        pair = pair * 2
    if len(pair) != 2 or min(pair) < 1:
        raise argparse.ArgumentTypeError(f"must be N or HxW with integers >= 1, got {text!r}")
    return pair


def warn_small_eps(values, flag: str = "--eps") -> None:
    """The commands take ε in /255 units: a value below 0.5 is almost surely the [0, 1] scale (0.031 for
    8/255, a habit from other code) and would attack at 0.031/255. Say both readings on stderr."""
    for v in values if isinstance(values, (list, tuple)) else [values]:
        if v is not None and 0 < v < 0.5:
            print(f"fastsegadv: warning: {flag} {v:g} is read as {v:g}/255 (on this command's /255 scale); if you "
                  f"meant {v:g} on the [0, 1] scale, give {flag} {v * 255:.3g}", file=sys.stderr)


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
            raise ValueError(f"config file {path} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") \
                from None
    else:
        raise ValueError(f"config file {path}: use a .yaml, .yml or .json file")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def parse_with_config(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv``; values from ``--config`` fill every option not given as a flag."""
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is None:
        return args
    data = read_config_file(args.config)
    known = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", "func", "command")}
    given = _explicit_dests(parser, argv)
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            raise ValueError(f"config file {args.config}: unknown option {key!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; known options: {', '.join(sorted(known))}")
        if key in given:
            continue
        action = known[key]
        if action.nargs in ("+", "*") and not isinstance(value, list):
            value = [value]
        if action.type is not None and value is not None:
            value = [action.type(v) for v in value] if isinstance(value, list) else action.type(value)
        if action.choices is not None:
            for v in value if isinstance(value, list) else [value]:
                if v not in action.choices:
                    raise ValueError(f"config file {args.config}: {key} = {v!r} is not one of {list(action.choices)}")
        setattr(args, key, value)
    return args


def _explicit_dests(parser: argparse.ArgumentParser, argv) -> set:
    """Destinations of the options that appear on the command line."""
    tokens = sys.argv[1:] if argv is None else list(argv)
    flags = {t.split("=", 1)[0] for t in tokens if t.startswith("-")}
    out = set()
    for action in parser._actions:
        if any(o in flags for o in action.option_strings):
            out.add(action.dest)
    return out
