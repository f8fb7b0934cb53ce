"""``lstmkit train | evaluate | predict | generate``: a thin layer over :mod:`lstmkit.train`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from lstmkit.data.errors import DataError
from lstmkit.train.config import TASKS

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
            print("\ninterrupted; continue with `lstmkit train --resume RUN_DIR`", file=sys.stderr)
            return 130

    return run


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``evaluate``, ``predict`` and ``generate`` to the ``lstmkit`` parser."""
    p = sub.add_parser(
        "train",
        help="train a model (default: Chinese sentiment BiLSTM)",
        description="Train a model. With no arguments: the default sentiment "
        "model on CPU; prints test accuracy and the run directory.",
    )
    g = p.add_argument_group("data")
    g.add_argument("--task", default="sentiment", choices=list(TASKS), help=_TASK_HELP)
    g.add_argument(
        "--data",
        help="your data file (text: .csv/.tsv/.jsonl; series: .npz; "
        "forecast: .csv; lm: plain text); see docs/training.md",
    )
    g.add_argument("--valid-data", help="separate validation file (else 10%% of --data)")
    g.add_argument("--test-data", help="separate test file (else 10%% of --data)")
    g.add_argument("--text-column", default=None, help="text column/key of --data [text]")
    g.add_argument("--label-column", default=None, help="label column/key of --data [label]")
    g.add_argument(
        "--max-len",
        type=int,
        help="truncate texts to this many characters (head and tail kept; 0 = no limit) [150]",
    )
    g.add_argument("--max-train", type=int, help="use only the first N training examples")
    g.add_argument(
        "--contrast-examples",
        type=int,
        help='text: add N synthetic "虽然 A，但是 B" training texts, made of two short '
        "training texts of opposite labels and labelled as B (0 = none) [task default]",
    )
    g.add_argument(
        "--max-chars", type=int, help="lm: use only the first N characters of the corpus"
    )
    g.add_argument("--window", type=int, help="forecast: past values per prediction [20]")
    g.add_argument("--bptt", type=int, help="lm: characters per training sequence [100]")
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=["lstm", "gru", "rnn"], help="recurrent cell [lstm]")
    m.add_argument("--layers", type=int, help="stacked recurrent layers [1]")
    m.add_argument("--hidden-size", type=int, help="hidden units per direction [task default]")
    m.add_argument("--embed-size", type=int, help="embedding / input projection size [128]")
    m.add_argument(
        "--bidirectional",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read sequences both ways [on for classification]",
    )
    m.add_argument(
        "--dropout",
        type=float,
        help="dropout on embeddings, between layers and before the output [task default]",
    )
    m.add_argument(
        "--embed-dropout",
        type=float,
        help="text: drop whole embedding channels per text (spatial dropout) [task default]",
    )
    m.add_argument(
        "--token-dropout",
        type=float,
        help="text: read this share of the characters as unknown while training [task default]",
    )
    m.add_argument("--backend", help="lstmkit backend: auto, reference, cpu, triton [auto]")
    o = p.add_argument_group("optimisation")
    o.add_argument("--lr", type=float, help="Adam learning rate [task default, ~1e-3..3e-3]")
    o.add_argument(
        "--weight-decay",
        type=float,
        help="AdamW weight decay on weight matrices (0 = plain Adam) [task default]",
    )
    o.add_argument(
        "--schedule",
        choices=["constant", "cosine"],
        help="learning rate: constant, or warm-up then cosine decay to 0 [task default]",
    )
    o.add_argument(
        "--label-smoothing", type=float, help="classification: label smoothing [task default]"
    )
    o.add_argument(
        "--average",
        type=float,
        help="validate, save and test a moving average of the weights with this decay "
        "per step (0 = off, e.g. 0.995) [task default]",
    )
    o.add_argument("--epochs", type=int, help="maximum epochs [task default]")
    o.add_argument(
        "--batch-size", type=int, help="global batch size (all processes) [task default]"
    )
    o.add_argument("--clip", type=float, help="clip the gradient norm to this (0 = off) [1.0]")
    o.add_argument(
        "--patience",
        type=int,
        help="early stopping: epochs without a better validation metric [task default]",
    )
    o.add_argument(
        "--stall-steps",
        type=int,
        help="diagnostics: stop if the loss has not "
        "improved for this many steps (0 = never) [2000]",
    )
    o.add_argument(
        "--time-budget",
        type=float,
        help="stop training after this many seconds "
        "(mid-epoch if need be; 0 = no limit) [240 for sentiment, else none]",
    )
    o.add_argument("--seed", type=int, help="random seed (model init, dropout, batch order) [0]")
    o.add_argument("--device", help="cpu, cuda, cuda:N or auto (a GPU when there is one) [auto]")
    o.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch [all cores; 1 helps when other jobs load the machine]",
    )
    r = p.add_argument_group("run")
    r.add_argument("--out-dir", help="where run directories go [runs]")
    r.add_argument("--name", help="run directory name [TASK-MODEL-TIME]")
    r.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint (its saved config is used)",
    )
    r.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        default=None,
        help="skip the classical baseline (TF-IDF + LR, AR(9))",
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
    q.add_argument("texts", nargs="*", metavar="TEXT", help="texts to label (default: stdin lines)")
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


def _intermix_texts(parser: argparse.ArgumentParser) -> None:
    """Let options and TEXTs mix in any order (``predict RUN --json A B`` = ``predict RUN A B --json``).

    argparse fills a ``nargs="*"`` positional at its first chance, so texts after an option
    would be "unrecognized arguments". Leftover words that are not options are texts.
    """
    plain = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, rest = plain(args, namespace)
        words = [a for a in rest if not a.startswith("-") or a == "-"]
        ns.texts = list(ns.texts or []) + words
        return ns, [a for a in rest if a not in words]

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


_CFG_KEYS = [
    "data",
    "valid_data",
    "test_data",
    "text_column",
    "label_column",
    "max_len",
    "max_train",
    "contrast_examples",
    "max_chars",
    "window",
    "bptt",
    "model",
    "layers",
    "hidden_size",
    "embed_size",
    "bidirectional",
    "dropout",
    "embed_dropout",
    "token_dropout",
    "backend",
    "lr",
    "weight_decay",
    "schedule",
    "label_smoothing",
    "average",
    "epochs",
    "batch_size",
    "clip",
    "patience",
    "stall_steps",
    "time_budget",
    "seed",
    "threads",
    "device",
    "out_dir",
    "name",
    "baseline",
]


def cmd_train(args: argparse.Namespace) -> int:
    from lstmkit.train import TrainConfig, Trainer

    # with --json, stdout carries only the summary; progress lines go to stderr
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else None
    if args.resume:
        trainer = Trainer(run_dir=args.resume, resume=True, progress=args.progress, log=log)
    else:
        cfg = TrainConfig.for_task(args.task, **{k: getattr(args, k) for k in _CFG_KEYS})
        trainer = Trainer(cfg, progress=args.progress, log=log)
    summary = trainer.fit()
    if trainer.dist.main:
        print(
            json.dumps(summary, ensure_ascii=False, indent=1)
            if args.json
            else format_summary(summary)
        )
    return 3 if summary.get("stopped_by_diagnostics") else 0


def format_summary(s: dict) -> str:
    """The human lines printed at the end of `lstmkit train`."""
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
    lines.append(
        f"trained in {s['train_seconds']:.0f}s ({s['epochs_run']} epochs, best {s['best_epoch']})"
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
    from lstmkit.train import load_run

    run = load_run(args.run_dir)
    texts = list(args.texts) if args.texts else [ln.rstrip("\n") for ln in sys.stdin]
    texts = texts if args.texts else [t for t in texts if t.strip()]
    for text, (label, prob) in zip(texts, run.predict(texts)):
        if args.json:
            print(
                json.dumps(
                    {"text": text, "label": label, "probability": round(prob, 6)},
                    ensure_ascii=False,
                )
            )
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
