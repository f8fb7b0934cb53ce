"""GPU benchmark: lstmkit's Triton backend vs torch.nn (cuDNN), plus a CUDA parity check.

    PYTHONPATH=src python3 benchmarks/gpu.py --out docs/benchmarks-gpu.md [--budget 420]

1. Parity on CUDA: lstmkit (triton) in float32 / bfloat16 against torch.nn in float64 with
   the same weights (forward outputs and every gradient), padded, packed and bidirectional,
   at shapes that use every kernel mode (resident weights, streamed weights, grid barrier).
2. The GPU sweep of the public grid (B in 1, 16, 64, 256; H in 128..1024; T = 256; I = H;
   float32 and bfloat16; LSTM and GRU) and packed cases (lengths uniform in [T/8, T]).
   Forward (no_grad) and forward+backward, timed interleaved A/B with CUDA events, median.
3. The fused LSTM extras (layer norm, peepholes) against the plain PyTorch loop of the same
   cell (lstmkit's reference backend: one cell call per step), the issue's >= 5x target; their
   parity runs in part 1 against the reference in float64.

``--smoke`` (alias ``--dry-run``) runs every part on the CPU under TRITON_INTERPRET=1 with tiny
shapes: a check that this script has no bugs before a GPU is at hand (not a benchmark).

Every point runs in its own try/except (failures land in the table), a global time budget
skips what is left, and the markdown is rewritten after every point, so a run cut short
still leaves its numbers. Ratio = cuDNN time / lstmkit time (above 1: lstmkit is faster).

This file is the entry point (command line, the run order); the parts live beside it:
gpu_common.py (log, module/input builders, timing), gpu_parity.py (1), gpu_sweep.py (2 and
--tune), gpu_extras.py (3), gpu_report.py (the markdown). Run it as a script, as above.
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", action="append", default=[], help="markdown path(s)")
    ap.add_argument("--json", default=None, help="every number and the log, as JSON")
    ap.add_argument("--dispatch-json", default="benchmarks/gpu-cudnn-faster.json",
                    help="where cuDNN beats triton (for native.CUDNN_FASTER); '' to skip")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run")
    ap.add_argument("--quick", action="store_true", help="a few points only")
    ap.add_argument("--tune", action="store_true", help="time launch configurations instead")
    ap.add_argument("--smoke", "--dry-run", dest="dry_run", action="store_true",
                    help="CPU + TRITON_INTERPRET=1, tiny shapes: checks the script, not a benchmark")  # fmt: skip
    args = ap.parse_args()
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
        gpu_extras.COMPILE_AT[:] = [("peephole", "float32", 2, 16), ("gru:layer_norm", "float32", 2, 16)]
        gpu_extras.COMPILE_BACKEND[:] = ["aot_eager"]
    elif not torch.cuda.is_available():
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
    parity: list = []
    run_parity(parity)
    fixed: list = []
    run_fixed(fixed, args.budget)
    T = GRID["T"]
    dts = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    todo = [(k, d, B, H, T, False) for B in GRID["B"] if B <= 64 for d in GRID["dtypes"]
            for k in GRID["kinds"] for H in GRID["H"]]  # fmt: skip
    Hp = GRID["H"][min(1, len(GRID["H"]) - 1)]
    Bp = [b for b in GRID["B"] if b <= 64]  # packed at the sweep's B, so padded points compare
    Bs, Bl = Bp[min(1, len(Bp) - 1)], Bp[-1]
    todo += [("LSTM", "float32", Bl, Hp, T, True), ("LSTM", "bfloat16", Bl, Hp, T, True),
             ("GRU", "float32", Bl, Hp, T, True), ("LSTM", "float32", Bs, 2 * Hp, T, True),
             ("LSTM", "float32", Bl, Hp // 2, T, True)]  # fmt: skip
    todo += [("LSTM", "float32", Bs, 2 * Hp, T, "step"), ("LSTM", "float32", Bl, 4 * Hp, T, "step")]
    if args.dry_run:  # one point of each kind: padded, packed, one launch per step
        todo = todo[:1] + [t for t in todo if t[5] is True][:1] + [t for t in todo if t[5] == "step"][:1]
    todo += [(k, d, B, H, T, False) for B in GRID["B"] if B > 64 for d in GRID["dtypes"]
             for k in GRID["kinds"] for H in GRID["H"]]  # fmt: skip
    if args.quick:
        todo = todo[:2] + [t for t in todo if t[5]][:1] + [t for t in todo if t[5] == "step"][:1]
        EXTRAS[:] = EXTRAS[:2]
    points: list = []
    extras: list = []  # run after the B <= 64 and packed points, before "step" and B > 64

    gpu_name = torch.cuda.get_device_name(0) if gpu_common.DEV == "cuda" else "cpu (dry run)"

    def save() -> None:
        dispatch = dispatch_points(points, gpu_name)
        write(outs, parity, points, summarize(points, extras), extras, fixed, dispatch)
        if args.dispatch_json:
            with open(args.dispatch_json, "w") as f:
                json.dump(dispatch, f, indent=1)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"parity": parity, "fixed": fixed, "points": points, "extras": extras,
                           "dispatch": dispatch, "log": LOG}, f, indent=1)  # fmt: skip

    for item in [*todo, None]:
        if not extras and (item is None or item[5] == "step" or item[2] > 64):
            run_extras(extras, args.budget)
            save()
        if item is None:
            break
        kind, dname, B, H, T_, packed = item
        p = {"kind": kind, "dtype": dname, "B": B, "H": H, "T": T_, "packed": packed}
        if time.time() - T0 > args.budget:
            p["error"] = "skipped (time budget)"
        else:
            if packed == "step":  # the same point with one launch per step, for comparison
                os.environ["LSTMKIT_TRITON_MODE"] = "step"
                packed = p["packed"] = False
                p["mode"] = "step"
            try:
                p.update(bench_point(kind, dts[dname], B, H, T_, packed, with_auto=not p.get("mode")))
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
        points.append(p)
        save()
    for n in summarize(points, extras):
        say(n)
    dispatch = dispatch_points(points, gpu_name)
    say(f"cuDNN faster than triton at {len(dispatch['cudnn_faster'])} of "
        f"{len(dispatch['points'])} padded points (fwd or fwd+bwd):")
    for r in dispatch["cudnn_faster"]:
        say(f"  {r['mode']} {r['dtype']} B={r['B']} H={r['H']}: fwd {r['fwd_ratio']:.2f}x, "
            f"fwd+bwd {r['train_ratio']:.2f}x")
    for k, v in sorted(dispatch["by_mode_dtype"].items()):
        say(f"  {k}: cuDNN faster at {v['cudnn_faster_fwd']} (fwd) / {v['cudnn_faster_train']} "
            f"(fwd+bwd) of {v['points']} points, H in {v['H']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
