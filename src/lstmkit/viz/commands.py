"""Sub-commands of the visualisation area: diagram, explain, report, experiment."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from lstmkit.data.errors import DataError

DEFAULT_SENTENCE = "虽然房间有点小，但是服务很周到"


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to the ``lstmkit`` parser."""
    p = sub.add_parser(
        "diagram",
        help="draw an LSTM/GRU/RNN cell (SVG or PNG)",
        description="Draw a recurrent cell from the same graph that is checked against the "
        "reference equations, labelled in the tutorial's notation.",
    )
    from lstmkit.viz.cellgraph import GRAPHS

    p.add_argument("cell", choices=list(GRAPHS))  # the cells that have a drawn graph
    p.add_argument("-o", "--output", help="output file, .svg or .png (default: CELL-cell.svg)")
    p.add_argument("--dpi", type=int, default=150, help="PNG resolution (default 150)")
    p.set_defaults(func=_guard(_diagram))

    p = sub.add_parser(
        "explain",
        help="per-character gate heatmaps and running prediction for one text",
        description="Record every gate while a trained classifier reads TEXT and draw them "
        "per character, with the predicted probability after each character.",
    )
    p.add_argument("run_dir", help="a training run directory (from `lstmkit train`)")
    p.add_argument("text", nargs="?", default=DEFAULT_SENTENCE, help="text to explain")
    p.add_argument("-o", "--output", help="output .png, .svg or .html (default: explain.png)")
    p.add_argument("--top-k", type=int, default=8, help="most active units shown per gate")
    p.add_argument("--layer", type=int, default=-1, help="layer to show (default: last)")
    p.add_argument("--direction", type=int, default=0, help="0 forward, 1 backward")
    p.set_defaults(func=_guard(_explain))

    p = sub.add_parser(
        "report",
        help="one self-contained HTML report of a run",
        description="Training curves, confusion matrix, example explanations and a model "
        "card, in one HTML file with every image inlined (no network requests).",
    )
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", help="output HTML (default: RUN_DIR/report.html)")
    p.add_argument("--examples", type=int, default=3, help="test examples to explain")
    p.add_argument("--max-eval", type=int, default=2000, help="test examples to evaluate")
    p.add_argument("--check", action="store_true",
                   help="open the page in headless Chromium; fail on console errors or requests")  # fmt: skip
    p.set_defaults(func=_guard(_report))

    from lstmkit.viz.experiments import EXPERIMENTS

    p = sub.add_parser(
        "experiment",
        help="run an experiment behind a tutorial claim; writes docs/experiments.md",
        description="Run one experiment (or all) and regenerate its section of the "
        "experiments document and its figures.",
    )
    p.add_argument("name", choices=[*EXPERIMENTS, "all"])
    p.add_argument("--doc", default="docs/experiments.md", help="markdown file to update")
    p.add_argument("--figures", default="docs/figures", help="directory for figures")
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_guard(_experiment))


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A user's mistake (missing run, bad option value, wrong kind of run) becomes one clear
    message and exit status 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (DataError, FileNotFoundError, ValueError, KeyError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else e
            print(f"lstmkit {args.command}: error: {msg}", file=sys.stderr)
            return 2
        except OSError as e:  # writing the output: read-only place, disk full, ...
            where = f" {e.filename}" if e.filename else ""
            print(f"lstmkit {args.command}: error: cannot write{where}: {e.strerror or e}; "
                  "choose another --output", file=sys.stderr)  # fmt: skip
            return 2

    return run


def _output(path: str | Path) -> Path:
    """``--output`` checked before any work: not a directory, its folder creatable/writable."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--output {out} is a directory; give a file name inside it")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--output {out}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"--output {out}: {parent} is not writable; choose another --output")
    return out


def _diagram(args: argparse.Namespace) -> int:
    from lstmkit.viz.diagram import draw_cell

    out = _output(args.output or f"{args.cell}-cell.svg")
    if out.suffix not in (".svg", ".png"):
        raise ValueError(f"--output must end in .svg or .png, got {out.name!r}")
    if args.dpi < 1:
        raise ValueError(f"--dpi must be positive, got {args.dpi}")
    draw_cell(args.cell, out, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from lstmkit.viz.explain import explain_run
    from lstmkit.viz.heatmap import save_explanation
    from lstmkit.viz.style import output_format

    out = _output(args.output or "explain.png")
    output_format(out)  # a wrong suffix is refused before the run is loaded
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    exp = explain_run(args.run_dir, args.text, layer=args.layer, direction=args.direction)
    save_explanation(exp, out, top_k=args.top_k)
    print(f"wrote {out}")
    print(exp.summary())
    return 0


def _report(args: argparse.Namespace) -> int:
    from lstmkit.viz.report import write_report

    out = _output(args.output) if args.output else Path(args.run_dir) / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--output must end in .html, got {out.name!r}")
    write_report(args.run_dir, out, n_examples=args.examples, max_eval=args.max_eval)
    print(f"wrote {out}")
    if args.check:
        from lstmkit.viz.browser import check_page

        res = check_page(out, out.with_suffix(".png"))
        for err in res.errors:
            print(f"browser error: {err}")
        for url in res.external_requests:
            print(f"network request: {url}")
        broken = [family for family, status in res.font_faces if status != "loaded"]
        for family in broken:
            print(f"embedded font not loaded: {family}")
        print(f"screenshot: {res.screenshot}")
        return 1 if res.errors or res.external_requests or broken or not res.loaded else 0
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from lstmkit.viz.experiments import run_experiments

    names = None if args.name == "all" else [args.name]
    run_experiments(names, doc=args.doc, figures=args.figures, quick=args.quick, seed=args.seed)
    return 0
