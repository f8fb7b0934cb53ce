"""GPU benchmark: lstmkit's Triton backend vs torch.nn (cuDNN), plus a CUDA parity check.

    PYTHONPATH=src python3 benchmarks/gpu.py --out docs/benchmarks-gpu.md [--budget 270]

(the device run's exact command, its timeout and what to do with the output: README.md here).
The parts, in run order (``--parts`` picks some):

1. parity: lstmkit (triton) in float32 / bfloat16 against torch.nn in float64 with the same
   weights (forward outputs and every gradient), padded, packed and bidirectional, at shapes
   that use every kernel mode, and the fused extras against the float64 reference.
2. fixed: the fixed per-call cost at B = 1, H = 128 float32 (LSTM, GRU), with and without
   LSTMKIT_TRITON_CUDA_GRAPH=1, split into fixed ms and us/step from two lengths (gpu_fixed.py).
3. sweep: the GPU grid (B in 1, 16, 64; H in 128..1024; T = 256; I = H; float32 and bfloat16;
   LSTM and GRU), forward (no_grad) and forward+backward, cuDNN vs triton vs ``auto`` (the
   default backend: what a user who swaps the class gets), interleaved, CUDA events, median.
4. packed: lengths uniform in [T/8, T] vs cuDNN's packed path, with time per step against the
   active rows (the 5x target).
5. extras: the fused layer-norm / peephole LSTM and layer-norm GRU kernels against the plain
   PyTorch loop of the same cell (the reference backend), a hand-written eager loop and that
   loop's cell under torch.compile (gpu_loops.py).
6. step / large: the same points with one launch per step; the B = 256 points.

From the sweep, the points where cuDNN is faster go to ``--dispatch-json`` (the input of
backends/native.py CUDNN_FASTER) and are printed at the end.

``--smoke`` (alias ``--dry-run``) runs every part on the CPU under TRITON_INTERPRET=1 with tiny
shapes: a check that this script has no bugs before a GPU is at hand (not a benchmark;
tests/test_gpu_bench.py runs it).

Every point runs in its own try/except (failures land in the table), a global time budget
skips what is left, and the markdown is rewritten after every point, so a run cut short
still leaves its numbers. Ratio = cuDNN time / lstmkit time (above 1: lstmkit is faster).

This file is the entry point (command line, the run order); the parts live beside it:
gpu_common.py (log, module/input builders, timing), gpu_parity.py, gpu_fixed.py,
gpu_sweep.py (sweep, packed, --tune), gpu_extras.py + gpu_loops.py, gpu_report.py +
gpu_report_parts.py (the markdown and the dispatch JSON). Run it as a script, as above.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import gpu_common
import gpu_extras
import gpu_fixed
import gpu_parity
import torch
from gpu_common import GRID, LOG, T0, say
from gpu_extras import EXTRAS, run_extras
from gpu_fixed import run_fixed
from gpu_parity import run_parity
from gpu_report import header, summarize, write
from gpu_report_parts import dispatch_points
from gpu_sweep import TUNE, bench_point, run_tune

PARTS = ("parity", "fixed", "sweep", "packed", "extras", "step", "large")


def part_of(item) -> str:
    """Which --parts name a sweep item belongs to."""
    packed, B = item[5], item[2]
    return "step" if packed == "step" else "packed" if packed else "large" if B > 64 else "sweep"


def _key(section: str, row) -> tuple:
    """What identifies a row of a section across runs (for --merge)."""
    if section == "parity":
        return (row[0],)
    names = {"fixed": ("kind", "dtype", "B", "H"),
             "points": ("kind", "dtype", "B", "H", "packed", "mode"),
             "extras": ("extras", "dtype", "B", "H", "packed", "mode", "forced")}[section]  # fmt: skip
    return tuple(str(row.get(n)) for n in names)


def merged(prev: dict | None, section: str, rows: list) -> list:
    """``rows`` with the measured rows of an earlier run's JSON that this run did not measure
    (skipped or failed rows of either run never hide a measured one)."""
    if not prev:
        return rows

    def measured(r) -> bool:
        return ("error" not in r) if isinstance(r, dict) else not str(r[1]).startswith("error")

    now = {_key(section, r): r for r in rows}
    out = [r for r in prev.get(section, []) if measured(r) and not (
        _key(section, r) in now and measured(now[_key(section, r)]))]  # fmt: skip
    keep = {_key(section, r) for r in out}
    return out + [r for r in rows if not (_key(section, r) in keep and not measured(r))]


def plan(parts: set[str], dry_run: bool, quick: bool) -> list[tuple]:
    """The sweep items in run order: (kind, dtype, B, H, T, packed: bool | "step")."""
    T = GRID["T"]
    todo = [(k, d, B, H, T, False) for B in GRID["B"] if B <= 64 for d in GRID["dtypes"]
            for k in GRID["kinds"] for H in GRID["H"]]  # fmt: skip
    Hp = GRID["H"][min(1, len(GRID["H"]) - 1)]
    Bp = [b for b in GRID["B"] if b <= 64]  # packed at the sweep's B, so padded points compare
    Bs, Bl = Bp[min(1, len(Bp) - 1)], Bp[-1]
    todo += [("LSTM", "float32", Bl, Hp, T, True), ("LSTM", "bfloat16", Bl, Hp, T, True),
             ("GRU", "float32", Bl, Hp, T, True), ("LSTM", "float32", Bs, 2 * Hp, T, True),
             ("LSTM", "float32", Bl, Hp // 2, T, True)]  # fmt: skip
    todo += [("LSTM", "float32", Bs, 2 * Hp, T, "step"), ("LSTM", "float32", Bl, 4 * Hp, T, "step")]
    if dry_run:  # one point of each kind: padded, packed, one launch per step
        todo = (
            todo[:1]
            + [t for t in todo if t[5] is True][:1]
            + [t for t in todo if t[5] == "step"][:1]
        )
    todo += [(k, d, B, H, T, False) for B in GRID["B"] if B > 64 for d in GRID["dtypes"]
             for k in GRID["kinds"] for H in GRID["H"]]  # fmt: skip
    if quick:
        todo = todo[:2] + [t for t in todo if t[5]][:1] + [t for t in todo if t[5] == "step"][:1]
    return [t for t in todo if part_of(t) in parts]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", action="append", default=[], help="markdown path(s)")
    ap.add_argument("--json", default=None, help="every number and the log, as JSON")
    ap.add_argument(
        "--dispatch-json",
        default="benchmarks/gpu-cudnn-faster.json",
        help="where cuDNN beats triton (for native.CUDNN_FASTER); '' to skip",
    )
    ap.add_argument(
        "--merge",
        default=None,
        help="an earlier run's --json: its measured rows fill what this run skips",
    )
    ap.add_argument("--budget", type=float, default=270.0, help="seconds for the whole run")
    ap.add_argument("--quick", action="store_true", help="a few points only")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"comma list of the parts to run, in the fixed order {','.join(PARTS)} "
                    "(a rerun after a cut-short run: the parts it skipped)")  # fmt: skip
    ap.add_argument(
        "--plan",
        action="store_true",
        help="print what a run would time, part by part, and exit (no GPU needed)",
    )
    ap.add_argument("--tune", action="store_true", help="time launch configurations instead")
    ap.add_argument("--smoke", "--dry-run", dest="dry_run", action="store_true",
                    help="CPU + TRITON_INTERPRET=1, tiny shapes: checks the script, not a benchmark")  # fmt: skip
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if parts - set(PARTS):
        ap.error(f"--parts: unknown {', '.join(sorted(parts - set(PARTS)))}; one of {PARTS}")
    outs = args.out or ["docs/benchmarks-gpu.md"]
    if args.dry_run:
        gpu_common.DEV = "cpu"
        os.environ["TRITON_INTERPRET"] = "1"
        GRID.update(B=[2], H=[16], T=8, dtypes=["float32"])
        gpu_fixed.FIXED_T[:] = [3]
        gpu_fixed.FIXED[:] = [("LSTM", "float32", 1, 16)]
        gpu_common.REPS.update(warm=1, min=1, max=1)
        TUNE[:] = [("LSTM", "float32", 2, 16, [{}, {"BK": "16", "STAGES": "3"}])]
        gpu_parity.PARITY[:] = [(k, torch.float32, 3, 16, 5, pk, bd, 1) for k, pk, bd in
                  [("LSTM", False, False), ("GRU", True, True)]]  # fmt: skip
        gpu_parity.PARITY_EXTRAS[:] = [(e, torch.float32, 3, 16, 5, pk, bd) for e, pk, bd in
                         [("layer_norm+peephole", True, False), ("gru:layer_norm", False, False)]]  # fmt: skip
        EXTRAS[:] = [("layer_norm+peephole", "float32", 2, 16, False, None),
                     ("peephole", "float32", 2, 16, False, None),
                     ("gru:layer_norm", "float32", 2, 16, False, None),
                     ("layer_norm", "float32", 2, 16, True, "1")]  # fmt: skip
        gpu_extras.COMPILE_AT[:] = [
            ("peephole", "float32", 2, 16),
            ("gru:layer_norm", "float32", 2, 16),
        ]
        gpu_extras.COMPILE_BACKEND[:] = ["aot_eager"]
    if args.quick:
        EXTRAS[:] = EXTRAS[:2]
    if "extras" not in parts:
        EXTRAS[:] = []
    if args.plan:
        todo = plan(parts, args.dry_run, args.quick)
        counts = {part: sum(part_of(t) == part for t in todo) for part in PARTS}
        counts.update(parity=len(gpu_parity.PARITY) + len(gpu_parity.PARITY_EXTRAS),
                      fixed=len(gpu_fixed.FIXED), extras=len(EXTRAS))  # fmt: skip
        for part in PARTS:
            print(f"{part}: {counts[part] if part in parts else 0}", flush=True)
        for t in todo:
            print(f"  {part_of(t)}: {' '.join(str(c) for c in t[:5])}", flush=True)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: nothing to benchmark", flush=True)
        return 1
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    say("device:", torch.cuda.get_device_name(0) if gpu_common.DEV == "cuda" else "cpu (dry run)")
    from lstmkit.backends import Request
    from lstmkit.backends import triton as tb

    req = Request("lstm", torch.device(gpu_common.DEV), torch.float32)
    say("triton supports a plain CUDA LSTM request:", tb.supports(req) is None)
    if args.tune:
        rows: list = []
        run_tune(rows, args.budget)
        lines = header() + ["", "## Tuning (cuDNN / lstmkit ms)", "",
                            "| kind | dtype | B | H | variant | fwd | fwd+bwd | ratio | per step |",
                            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {' | '.join(str(c) for c in r)} |" for r in rows]
        for target in outs:
            with open(target, "w") as f:
                f.write("\n".join(lines) + "\n")
        return 0
    spent: dict = {}  # wall seconds per part, to size the next run's budget

    def timed(part: str, fn, *a) -> None:
        t = time.time()
        fn(*a)
        spent[part] = round(spent.get(part, 0.0) + time.time() - t, 1)

    parity: list = []
    if "parity" in parts:
        timed("parity", run_parity, parity)
    fixed: list = []
    if "fixed" in parts:
        timed("fixed", run_fixed, fixed, args.budget)
    todo = plan(parts, args.dry_run, args.quick)
    dts = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    points: list = []
    extras: list = []  # run after the B <= 64 and packed points, before "step" and B > 64
    extras_done = [False]

    gpu_name = torch.cuda.get_device_name(0) if gpu_common.DEV == "cuda" else "cpu (dry run)"

    prev = None
    if args.merge:
        with open(args.merge) as f:
            prev = json.load(f)
        say(f"merging the measured rows of {args.merge}")

    def save() -> None:
        got = {"parity": parity, "fixed": fixed, "points": points, "extras": extras}
        got = {k: merged(prev, k, v) for k, v in got.items()}
        dispatch = dispatch_points(got["points"], gpu_name)
        notes = summarize(got["points"], got["extras"])
        notes.append("- wall seconds per part (this run): "
                     + ", ".join(f"{k} {v:.0f}" for k, v in spent.items()))  # fmt: skip
        write(outs, got["parity"], got["points"], notes, got["extras"], got["fixed"], dispatch)
        if args.dispatch_json:
            with open(args.dispatch_json, "w") as f:
                json.dump(dispatch, f, indent=1)
        if args.json:
            with open(args.json, "w") as f:
                log = [*(prev or {}).get("log", []), *LOG]
                json.dump({**got, "dispatch": dispatch, "seconds": spent, "log": log}, f, indent=1)

    for item in [*todo, None]:
        if not extras_done[0] and (item is None or part_of(item) in ("step", "large")):
            extras_done[0] = True
            timed("extras", run_extras, extras, args.budget)
            save()
        if item is None:
            break
        kind, dname, B, H, T_, packed = item
        p = {"kind": kind, "dtype": dname, "B": B, "H": H, "T": T_, "packed": packed}
        t_point, part = time.time(), part_of(item)
        if time.time() - T0 > args.budget:
            p["error"] = "skipped (time budget)"
        else:
            if packed == "step":  # the same point with one launch per step, for comparison
                os.environ["LSTMKIT_TRITON_MODE"] = "step"
                packed = p["packed"] = False
                p["mode"] = "step"
            try:
                p.update(
                    bench_point(kind, dts[dname], B, H, T_, packed, with_auto=not p.get("mode"))
                )
                say(kind, dname, B, H, "packed" if packed else "", p["cfg"],
                    "fwd {:.3f}/{:.3f} ms".format(*p["fwd"]), f"({p['fwd'][0] / p['fwd'][1]:.2f}x)",
                    "train {:.3f}/{:.3f} ms".format(*p["train"]),
                    f"({p['train'][0] / p['train'][1]:.2f}x)")  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - record and go on
                p["error"] = f"error: {type(exc).__name__}: {exc}"[:160].replace("|", "/")
                say(kind, dname, B, H, p["error"])
                traceback.print_exc()
            os.environ.pop("LSTMKIT_TRITON_MODE", None)
            if gpu_common.DEV == "cuda":
                torch.cuda.empty_cache()
        spent[part] = round(spent.get(part, 0.0) + time.time() - t_point, 1)
        points.append(p)
        save()
    say("wall seconds per part:", spent, f"total {time.time() - T0:.0f} s")
    all_points, all_extras = merged(prev, "points", points), merged(prev, "extras", extras)
    for n in summarize(all_points, all_extras):
        say(n)
    dispatch = dispatch_points(all_points, gpu_name)
    say(
        f"cuDNN faster than triton at {len(dispatch['cudnn_faster'])} of "
        f"{len(dispatch['points'])} padded points (fwd or fwd+bwd):"
    )
    for r in dispatch["cudnn_faster"]:
        say(
            f"  {r['mode']} {r['dtype']} B={r['B']} H={r['H']}: fwd {r['fwd_ratio']:.2f}x, "
            f"fwd+bwd {r['train_ratio']:.2f}x"
        )
    for k, v in sorted(dispatch["by_mode_dtype"].items()):
        say(
            f"  {k}: cuDNN faster at {v['cudnn_faster_fwd']} (fwd) / {v['cudnn_faster_train']} "
            f"(fwd+bwd) of {v['points']} points, H in {v['H']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
