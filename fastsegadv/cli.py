"""``fastsegadv`` command line: ``train``, ``evaluate``, ``study``, ``demo`` and ``train-reference``.

``fastsegadv <command> --help`` explains every option; ``train`` and ``evaluate`` also read a YAML/JSON
``--config`` file and run under ``torchrun``."""
from __future__ import annotations

import argparse
import sys

from . import __version__, demo, train_reference
from .commands import evaluate, study, train

COMMANDS = {
    "train": "adversarial training with a named attack (built-in data by default); DDP under torchrun",
    "evaluate": "robustness table, curves and worst case of models under attacks x budgets",
    "study": "the studies of Arnab et al.: eps sweeps, multiscale, transfer, CRF (report folder)",
    "demo": "attack the shipped models on the built-in data and print an mIoU table",
    "train-reference": "retrain a shipped reference model from scratch",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastsegadv", description="Adversarial robustness of semantic segmentation.")
    p.add_argument("--version", action="version", version=f"fastsegadv {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, module in (("train", train), ("evaluate", evaluate), ("study", study)):
        # the real parser of these two is module.build_parser(); this entry only lists them in --help
        sub.add_parser(name, help=COMMANDS[name], add_help=False)
    d = sub.add_parser("demo", help=COMMANDS["demo"])
    demo.add_arguments(d)
    d.set_defaults(func=demo.main)
    t = sub.add_parser("train-reference", help=COMMANDS["train-reference"])
    train_reference.add_arguments(t)
    t.set_defaults(func=train_reference.main)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "evaluate", "study"):
        module = {"train": train, "evaluate": evaluate, "study": study}[argv[0]]
        try:
            return module.main(argv[1:])
        except (ValueError, FileNotFoundError, KeyError) as e:  # bad input: one clear line, exit 2
            print(f"fastsegadv {argv[0]}: error: {e}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as e:  # bad input: one clear line, exit 2
        print(f"fastsegadv {argv[0] if argv else ''}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
