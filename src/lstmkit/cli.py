"""``lstmkit`` command line: a thin argparse layer over the Python API.

Each area owns its sub-commands and registers them here: training (train, evaluate,
predict, generate), visualisation (diagram, explain, report, experiment) and bench.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from lstmkit import __version__
    from lstmkit import bench as bench_commands
    from lstmkit.train import commands as train_commands
    from lstmkit.viz import commands as viz_commands

    parser = argparse.ArgumentParser(
        prog="lstmkit",
        description="Readable, fast LSTM/GRU/RNN: train, evaluate, explain and benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train_commands.register(sub)
    viz_commands.register(sub)
    bench_commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
