"""``fastsegadv`` command line: ``demo`` and ``train-reference``."""
from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    from . import demo, train_reference

    p = argparse.ArgumentParser(prog="fastsegadv", description="Adversarial robustness of semantic segmentation.")
    p.add_argument("--version", action="version", version=f"fastsegadv {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="attack the shipped models on the built-in data and print an mIoU table")
    demo.add_arguments(d)
    d.set_defaults(func=demo.main)
    t = sub.add_parser("train-reference", help="train a shipped reference model from scratch")
    train_reference.add_arguments(t)
    t.set_defaults(func=train_reference.main)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
