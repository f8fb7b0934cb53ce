"""``lstmkit train | evaluate | predict | generate``: a thin layer over :mod:`lstmkit.train`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable

from lstmkit.data.errors import DataError
from lstmkit.train.config import TASKS, TrainConfig, _flag
from lstmkit.train.task_specs import TASK_SPECS

_TASK_HELP = "; ".join(f"{k}: {v}" for k, v in TASKS.items())


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """User mistakes become a clear message and exit status 2, never a traceback."""

    def run(args: argparse.Namespace) -> int:
        from lstmkit.train.trainer import TrainingStopped

        try:
            return fn(args)
        except DataError as e:
            print(f"lstmkit {args.command}: error: {e}", file=sys.stderr)
            return 2
        except TrainingStopped as e:
            print(f"lstmkit train: {e}", file=sys.stderr)
            return 3
        except KeyboardInterrupt:
            where = getattr(args, "run_dir_started", None)
            hint = (
                f"; continue with `lstmkit train --resume {where}`"
                if where and os.path.isfile(os.path.join(where, "config.json"))
                else ""
            )
            print(f"\ninterrupted{hint}", file=sys.stderr)
            return 130
        except OSError as e:  # a full disk, a folder removed under a running job, ...
            name = f" {e.filename}" if e.filename else ""
            print(
                f"lstmkit {args.command}: error: cannot read or write{name}: {e.strerror or e}",
                file=sys.stderr,
            )
            return 2

    return run


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``evaluate``, ``predict`` and ``generate`` to the ``lstmkit`` parser."""
    p = sub.add_parser(
        "train",
        help="train a model (default: Chinese sentiment BiLSTM)",
        description="Train a model. With no arguments: the default sentiment "
        "model on CPU; prints test accuracy and the run directory.",
    )
    groups = {name: p.add_argument_group(name) for name in ("data", "model", "optimisation", "run")}
    groups["data"].add_argument("--task", choices=list(TASKS), help=_TASK_HELP + " [sentiment]")
    for f in TrainConfig.options():
        _add_option(groups[f.metadata["group"]], f)
    r = groups["run"]
    r.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint (its saved config is used)",
    )
    r.add_argument(
        "--no-progress", dest="progress", action="store_false", default=True, help="no progress bar"
    )
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_guard(cmd_train))

    e = sub.add_parser("evaluate", help="re-score a finished run on its test (or valid) data")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by `lstmkit train`")
    e.add_argument(
        "--split",
        choices=["test", "valid", "train"],
        default="test",
        help="which split to score (default: test)",
    )
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=_guard(cmd_evaluate))

    q = sub.add_parser("predict", help="label texts with a trained text classifier")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a text-classification run directory")
    q.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="texts to label (default: stdin, one per line; a blank line gives a blank verdict). "
        "Words after -- are texts even if they start with -",
    )
    q.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per line: {"text", "label", "probability"}',
    )
    q.set_defaults(func=_guard(cmd_predict))
    _intermix_texts(q)

    n = sub.add_parser("generate", help="sample text from a character language model run")
    n.add_argument("run_dir", metavar="RUN_DIR", help="a `--task lm` run directory")
    n.add_argument("--prompt", default="", help="text to continue (default: none)")
    n.add_argument("--length", type=int, default=200, help="characters to generate (default: 200)")
    n.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="sampling temperature; lower is more conservative (default: 0.8)",
    )
    n.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    n.set_defaults(func=_guard(cmd_generate))


_OPTION_LIKE = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*(=.*)?")


def _intermix_texts(parser: argparse.ArgumentParser) -> None:
    """Let options and TEXTs mix in any order (``predict RUN --json A B`` = ``predict RUN A B --json``).

    argparse fills a ``nargs="*"`` positional at its first chance, so texts after an option
    would be "unrecognized arguments". Leftover words that are not options are texts: a word
    that does not look like an option (``-_-差评``, ``-5分``) is a text too, and after ``--``
    every word is one.
    """
    plain = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        tail = []
        if "--" in args:  # everything after "--" is a text, whatever it looks like
            cut = args.index("--")
            args, tail = args[:cut], args[cut + 1 :]
        # a text that starts with "-" but is no option must not reach argparse as one: it
        # travels as a placeholder (keeping its place among the texts) and is put back after
        held = {}
        for i, a in enumerate(args):
            if a.startswith("-") and len(a) > 1 and not _OPTION_LIKE.fullmatch(a):
                held[f"\0text{i}"] = a
                args[i] = f"\0text{i}"
        ns, rest = plain(args, namespace)
        words = [a for a in rest if not a.startswith("-") or a == "-"]
        texts = list(ns.texts or []) + words + tail
        ns.texts = [held.get(t, t) for t in texts]
        if isinstance(getattr(ns, "run_dir", None), str):
            ns.run_dir = held.get(ns.run_dir, ns.run_dir)
        return ns, [a for a in rest if a not in words]

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _default_text(name: str) -> str:
    """``[value]`` when every task has the same default, else ``[task default]``."""
    base = next(f for f in dataclasses.fields(TrainConfig) if f.name == name).default
    values = {repr(spec.defaults.get(name, base)) for spec in TASK_SPECS.values()}
    if len(values) > 1:
        return "[task default]"
    if isinstance(base, bool):
        return "[on]" if base else "[off]"
    return "" if base is None else f"[{base}]"


def _add_option(group, f: dataclasses.Field) -> None:
    """One ``TrainConfig`` field as ``--field-name`` (type, help and choices from the field)."""
    help_ = f.metadata["help"]
    if "[" not in help_:
        default = _default_text(f.name)
        help_ = f"{help_} {default}" if default else help_
    kwargs = dict(dest=f.name, default=None, help=help_, **f.metadata["argparse"])
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    flag = "--" + f.name.replace("_", "-")
    if kind.startswith("bool"):
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    for name, cast in (("int", int), ("float", float)):
        if kind.startswith(name):
            kwargs["type"] = cast
    group.add_argument(flag, **kwargs)


def _given_options(args: argparse.Namespace) -> dict:
    """The TrainConfig options given on the command line (``None`` = not given)."""
    return {
        f.name: getattr(args, f.name)
        for f in TrainConfig.options()
        if getattr(args, f.name, None) is not None
    }


def cmd_train(args: argparse.Namespace) -> int:
    from lstmkit.train import TrainConfig, Trainer

    # with --json, stdout carries only the summary; progress lines go to stderr
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else None
    given = _given_options(args)
    if args.resume:
        if given or args.task:
            flags = ", ".join(["--task"] * bool(args.task) + [_flag(k) for k in given])
            raise DataError(
                f"--resume continues a run with its saved config; it takes no training options "
                f"(given: {flags})",
                args.resume,
                f"leave {flags} out to finish the run as it was started, or start a new run "
                "with them",
            )
        trainer = Trainer(run_dir=args.resume, resume=True, progress=args.progress, log=log)
    else:
        cfg = TrainConfig.for_task(args.task or "sentiment", **given)
        trainer = Trainer(cfg, progress=args.progress, log=log)
    args.run_dir_started = trainer.run_dir  # for the Ctrl-C hint
    summary = trainer.fit()
    if trainer.dist.main and trainer.config.task == "sentiment":
        # The tutorial's claim (section 一), measured on the shipped held-out turning reviews.
        from lstmkit.train.turning import evaluate_run

        summary["turning"] = evaluate_run(trainer.run_dir, baseline=trainer.config.baseline,
                                          task=trainer.task)  # fmt: skip
    if trainer.dist.main:
        print(
            json.dumps(summary, ensure_ascii=False, indent=1)
            if args.json
            else format_summary(summary)
        )
    return 3 if summary.get("stopped_by_diagnostics") else 0


def format_summary(s: dict) -> str:
    """The human lines printed at the end of `lstmkit train` (the one place they are made)."""
    lines = []
    base = s.get("baseline") or {}
    if "test_accuracy" in s:
        line = f"test accuracy {s['test_accuracy']:.4f}"
        if "test_accuracy" in base:
            line += f"   (baseline, {base['name']}: {base['test_accuracy']:.4f})"
        lines.append(line)
    if "test_rmse" in s:
        line = f"test RMSE {s['test_rmse']:.2f} (one-step forecasts)"
        if "test_rmse" in base:
            line += f"   (baseline, {base['name']}: {base['test_rmse']:.2f})"
        lines.append(line)
    if "test_perplexity" in s:
        line = (
            f"test perplexity {s['test_perplexity']:.1f} ({s['test_bits_per_char']:.3f} bits/char)"
        )
        if "unigram_test_perplexity" in base:
            line += f"   (unigram baseline: {base['unigram_test_perplexity']:.1f})"
        lines.append(line)
    if base.get("skipped"):
        lines.append(f"baseline skipped: {base['skipped']}")
    ex = s.get("examples")
    if ex:
        ok = sum(e["expected"] == e["predicted"] for e in ex)
        lines.append(f'"虽然…但是…" turns: {ok}/{len(ex)} right')
        lines += [f"  {e['predicted']} (p_pos {e['p_pos']:.2f})  {e['text']}" for e in ex]
    if s.get("turning"):
        from lstmkit.train.turning import format_table

        lines.append(format_table(s["turning"]))
    lines.append(
        f"trained in {s['train_seconds']:.0f}s ({s['epochs_run']} epochs, best {s['best_epoch']})"
    )
    if s.get("stopped_by_time_budget"):
        lines.append(
            f"stopped by the time budget ({s.get('time_budget') or 0:g}s) after step "
            f"{s.get('steps', '?')} of {s.get('planned_steps', '?')}: this result depends on "
            "the machine's speed and load (--time-budget 0 trains every epoch)"
        )
    lines.append(f"run directory: {s['run_dir']}")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lstmkit.train.evaluate import evaluate_run

    metrics = evaluate_run(args.run_dir, args.split)
    if args.json:
        print(json.dumps(metrics, ensure_ascii=False))
    else:
        print(
            "  ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
            )
        )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Label TEXTs, or stdin: one output line per input line, always (a blank line gets a
    line with an empty label and probability, ``null`` in JSON); no input at all is exit 2."""
    from lstmkit.train import load_run

    run = load_run(args.run_dir)
    from_stdin = not args.texts
    if from_stdin:
        if sys.stdin.isatty():
            print("reading texts from stdin, one per line (Ctrl-D ends)", file=sys.stderr)
        texts = [ln.rstrip("\r\n") for ln in sys.stdin]
        if not texts:
            raise DataError(
                "no input: stdin was empty",
                fix='give texts as arguments (`lstmkit predict RUN "很好"`) or one per line on stdin',
            )
    else:
        texts = list(args.texts)
    keep = [t for t in texts if t.strip()] if from_stdin else texts
    verdicts = iter(run.predict(keep))
    for text in texts:
        label, prob = next(verdicts) if (text.strip() or not from_stdin) else (None, None)
        if args.json:
            p = None if prob is None else round(prob, 6)
            print(json.dumps({"text": text, "label": label, "probability": p}, ensure_ascii=False))
        elif label is None:
            print(f"\t\t{text}")
        else:
            print(f"{label}\t{prob:.3f}\t{text}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from lstmkit.train import load_run

    if args.length < 1:
        raise DataError(f"--length must be at least 1, got {args.length}")
    if args.temperature <= 0:
        raise DataError(f"--temperature must be positive, got {args.temperature}")
    run = load_run(args.run_dir)
    print(run.generate(args.prompt, args.length, args.temperature, args.seed))
    return 0
