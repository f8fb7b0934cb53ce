"""Sections of benchmarks/gpu.py's report beyond the sweep: the fixed per-call cost, packed
batches per step, and the points where cuDNN is faster (the input of native.CUDNN_FASTER)."""

from __future__ import annotations

from collections import defaultdict

PACKED_TARGET = 5.0  # issue 15: packed at least 5x cuDNN's packed path


def fixed_lines(rows) -> list[str]:
    lines = ["", "## Fixed per-call cost (B = 1, H = 128)", "",
             "Each variant timed at two lengths T in the same interleaved rounds; the line "
             "through the two medians gives the fixed cost (intercept, ms) and the per-step "
             "time (slope, us/step). `triton+graph` = LSTMKIT_TRITON_CUDA_GRAPH=1 (forward "
             "calls captured once per shape, then replayed); fwd+bwd has no graph variant.", "",
             "| kind | dtype | B | H | variant | fwd ms (T) | fwd fixed ms | fwd us/step "
             "| fwd+bwd ms (T) | fwd+bwd fixed ms | fwd+bwd us/step |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        key = f"| {r['kind']} | {r['dtype']} | {r['B']} | {r['H']} |"
        if "error" in r:
            lines.append(f"{key} {r['error']} | | | | | | |")
            continue
        Ts = "/".join(str(t) for t in r["T"])
        for name in ("cuDNN", "triton", "triton+graph"):
            f, t = r["fwd"].get(name), r["train"].get(name)
            if f is None:
                lines.append(f"{key} {name} | {r.get('graph', 'not timed')} | | | | | |")
                continue
            cells = [f"{'/'.join(f'{v:.3f}' for v in f['ms'])} ({Ts})", f"{f['fixed_ms']:.3f}",
                     f"{f['us_step']:.2f}"]  # fmt: skip
            cells += ([f"{'/'.join(f'{v:.3f}' for v in t['ms'])} ({Ts})", f"{t['fixed_ms']:.3f}",
                       f"{t['us_step']:.2f}"] if t else ["(as triton)", "", ""])  # fmt: skip
            lines.append(f"{key} {name} | {' | '.join(cells)} |")
        if "graph_max_abs_diff" in r:
            lines.append(f"{key} graph replay vs plain call | max abs diff "
                         f"{r['graph_max_abs_diff']:.1e} | | | | | |")  # fmt: skip
    return lines


def packed_lines(points) -> list[str]:
    """Packed points per step: where the 5x target is missed, the time per step against the
    rows a step actually has (mean active rows) and the padded point of the same B."""
    dense = {(p["kind"], p["dtype"], p["B"], p["H"]): p for p in points
             if not p["packed"] and "error" not in p and p.get("mode") != "step"}  # fmt: skip
    lines = ["", "## Packed batches per step (target: >= 5x cuDNN's packed path)", "",
             "Lengths uniform in [T/8, T]: `steps` = the longest sequence, `rows/step` = mean "
             "active rows per step. us/step = ms / steps; `padded us/step` = lstmkit's padded "
             "point of the same B and H (full rows every step), where the sweep has it.", "",
             "| kind | dtype | B | H | steps | rows/step | cuDNN us/step | lstmkit us/step "
             "| fwd+bwd ratio | padded us/step | target |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in points:
        if not p["packed"] or "error" in p or "steps" not in p:
            continue
        n = p["steps"]
        (tr, tf) = p["train"]
        ratio = tr / tf
        d = dense.get((p["kind"], p["dtype"], p["B"], p["H"]))
        pad = f"{d['train'][1] / d['T'] * 1e3:.2f}" if d else ""
        met = "met" if ratio >= PACKED_TARGET else "missed"
        lines.append(f"| {p['kind']} | {p['dtype']} | {p['B']} | {p['H']} | {n} | "
                     f"{p['rows'] / n:.1f} | {tr / n * 1e3:.2f} | {tf / n * 1e3:.2f} | "
                     f"{ratio:.2f}x | {pad} | {met} |")  # fmt: skip
    return lines


def dispatch_points(points, gpu: str) -> dict:
    """The padded sweep points where cuDNN beat lstmkit's triton backend, for the CUDA rule
    (native.prefer_cudnn / CUDNN_FASTER): every point with both ratios, the losing ones, and
    per (mode, dtype) how many lost; "table" is CUDNN_FASTER's shape: (mode, dtype) -> fwd/train -> [B, H]."""
    rows, faster = [], []
    by_pair: dict = defaultdict(lambda: {"points": 0, "cudnn_faster_fwd": 0,
                                         "cudnn_faster_train": 0, "H": set()})  # fmt: skip
    for p in points:
        if p["packed"] or "error" in p or p.get("mode") == "step":
            continue
        fr, tr = p["fwd"][0] / p["fwd"][1], p["train"][0] / p["train"][1]
        row = {"mode": p["kind"].lower(), "dtype": p["dtype"], "B": p["B"], "H": p["H"],
               "T": p["T"], "fwd_ratio": round(fr, 3), "train_ratio": round(tr, 3),
               "cudnn_faster_fwd": fr < 1.0, "cudnn_faster_train": tr < 1.0}  # fmt: skip
        rows.append(row)
        pair = by_pair[f"{row['mode']}/{row['dtype']}"]
        pair["points"] += 1
        pair["cudnn_faster_fwd"] += fr < 1.0
        pair["cudnn_faster_train"] += tr < 1.0
        if fr < 1.0 or tr < 1.0:
            faster.append(row)
            pair["H"].add(p["H"])
    pairs = {k: {**v, "H": sorted(v["H"])} for k, v in by_pair.items()}
    # Per (mode, dtype) and call kind (fwd = no-grad inference, train = a backward follows:
    # Request.grad), the [B, H] grid points where cuDNN won: a finer CUDNN_FASTER can be
    # filled from this as is (a request rounds B and H up to the next grid point).
    table: dict = defaultdict(lambda: {"fwd": [], "train": []})
    for r in faster:
        for call in ("fwd", "train"):
            if r[f"cudnn_faster_{call}"]:
                table[f"{r['mode']}/{r['dtype']}"][call].append([r["B"], r["H"]])
    return {
        "gpu": gpu,
        "ratio": "cuDNN ms / triton ms (below 1: cuDNN faster)",
        "cudnn_faster": faster,
        "by_mode_dtype": pairs,
        "table": dict(table),
        "points": rows,
    }


def dispatch_lines(dispatch) -> list[str]:
    if not dispatch:
        return []
    lines = ["", "## Where cuDNN is faster (input for native.CUDNN_FASTER)", "",
             f"Padded sweep points with a ratio below 1.0 (fwd or fwd+bwd) on {dispatch['gpu']}; "
             "the full list is in the dispatch JSON (`--dispatch-json`).", "",
             "| mode | dtype | B | H | fwd ratio | fwd+bwd ratio |", "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['mode']} | {r['dtype']} | {r['B']} | {r['H']} | {r['fwd_ratio']:.2f}x | "
              f"{r['train_ratio']:.2f}x |" for r in dispatch["cudnn_faster"]]  # fmt: skip
    lines += ["", "| mode/dtype | points | cuDNN faster fwd | cuDNN faster fwd+bwd | at H |",
              "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v['points']} | {v['cudnn_faster_fwd']} | {v['cudnn_faster_train']} | "
              f"{', '.join(map(str, v['H']))} |" for k, v in sorted(dispatch["by_mode_dtype"].items())]  # fmt: skip
    return lines
