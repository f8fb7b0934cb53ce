"""``lstmkit bench``: lstmkit backends vs torch.nn, onnxruntime, the reference and a tutorial
LSTM.

Every configuration of the grid (benchmarks/grid.json, plus points whose H is not a multiple
of 16) is timed forward (inference, no grad) and forward+backward, padded or packed, with all
implementations interleaved A/B in one process; medians and speed-ups over torch.nn
(``torch_time / impl_time``, > 1 is faster) and, for inference, over onnxruntime are reported
next to the achieved GFLOP/s, the machine's measured sgemm GFLOP/s, the CPU model and the ISA
path the CPU backend ran (``--isa`` measures several paths, see bench_peers.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lstmkit import bench_peers
from lstmkit.bench_report import isa_words, markdown, summary, table
from lstmkit.reference.spec import KINDS

IMPLS = ("cpu", "prepacked", "reference", "torch", "naive", "onnxruntime")
# "prepacked": the cpu backend after lstmkit.prepack(model) (weights kept between inference
# calls, as an onnxruntime session keeps its own); inference only, training is the cpu row.
GATES = {s.class_name: s.G for s in KINDS.values()}  # gate blocks per kind, for FLOPs


# ----------------------------------------------------------------------------- naive LSTM
class NaiveLSTMCell(nn.Module):
    """The usual tutorial cell: one nn.Linear per gate over [x, h], eager pointwise math."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        n = input_size + hidden_size
        self.input_gate, self.forget_gate = nn.Linear(n, hidden_size), nn.Linear(n, hidden_size)
        self.cell_gate, self.output_gate = nn.Linear(n, hidden_size), nn.Linear(n, hidden_size)

    def forward(self, x, state):
        h, c = state
        xh = torch.cat([x, h], dim=1)  # (B, I + H)
        i, f = torch.sigmoid(self.input_gate(xh)), torch.sigmoid(self.forget_gate(xh))
        g, o = torch.tanh(self.cell_gate(xh)), torch.sigmoid(self.output_gate(xh))
        c = f * c + i * g
        return o * torch.tanh(c), c


class NaiveLSTM(nn.Module):
    """Tutorial-style stack: a Python loop over time per layer and direction (padded only)."""

    def __init__(self, I: int, H: int, layers: int, bidirectional: bool) -> None:
        super().__init__()
        D = 2 if bidirectional else 1
        self.H, self.D = H, D
        sizes = [I] + [H * D] * (layers - 1)
        self.cells = nn.ModuleList(
            NaiveLSTMCell(sizes[l], H) for l in range(layers) for _ in range(D)
        )

    def forward(self, x):  # x (T, B, I) -> (T, B, D*H)
        T, B = x.shape[:2]
        for l in range(len(self.cells) // self.D):
            outs = []
            for d in range(self.D):
                cell, state = self.cells[l * self.D + d], (x.new_zeros(B, self.H),) * 2
                ys = [None] * T
                for t in range(T - 1, -1, -1) if d else range(T):
                    state = cell(x[t], state)
                    ys[t] = state[0]
                outs.append(torch.stack(ys))
            x = torch.cat(outs, dim=2)
        return x


# ----------------------------------------------------------------------------- workloads
# Points whose H is not a multiple of 16 (the kernels' panel width): tails in every GEMM and
# in the gate math.  Added to the default grid (--no-odd-h leaves them out).
ODD_H_POINTS = [
    {"kind": "LSTM", "B": 1, "T": 200, "I": 64, "H": 200, "L": 1},
    {"kind": "LSTM", "B": 24, "T": 150, "I": 100, "H": 200, "L": 1},
    {"kind": "LSTM", "B": 48, "T": 80, "I": 256, "H": 384, "L": 2},
    {"kind": "LSTM", "B": 32, "T": 60, "I": 256, "H": 700, "L": 1},
    {"kind": "GRU", "B": 48, "T": 80, "I": 256, "H": 384, "L": 2},
    {"kind": "RNN", "B": 32, "T": 200, "I": 64, "H": 200, "L": 1},
]


def _grid_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / "benchmarks" / "grid.json").exists():
            return root / "benchmarks" / "grid.json"
    raise SystemExit("lstmkit bench: benchmarks/grid.json not found; pass --grid PATH")


def _label(p: dict) -> str:
    tail = (" bi" if p["bidirectional"] else "") + (" packed" if p["packed"] else "")
    return f"{p['kind']} B{p['B']} T{p['T']} I{p['I']} H{p['H']} L{p['L']}{tail}"


def _lengths(p: dict) -> torch.Tensor:
    T, B = p["T"], p["B"]
    if not p["packed"]:
        return torch.full((B,), T, dtype=torch.long)
    return torch.randint(max(1, T // 8), T + 1, (B,), generator=torch.Generator().manual_seed(0))


def flops(p: dict, lengths: torch.Tensor) -> float:
    """Useful forward FLOPs: 2 * tokens * G*H * (I_l + H) summed over layers and directions."""
    D, H, tokens = 2 if p["bidirectional"] else 1, p["H"], int(lengths.sum())
    total = sum(
        2.0 * tokens * GATES[p["kind"]] * H * ((p["I"] if l == 0 else D * H) + H)
        for l in range(p["L"])
    )
    return total * D


Closures = tuple[Callable[[], None], Callable[[], None] | None]


def _make(impl: str, p: dict, packed: bool) -> Closures | None:
    """(forward, forward+backward or None) closures for one implementation, or None if n/a."""
    torch.manual_seed(0)
    kind, T, B, I, H, L, bi = p["kind"], p["T"], p["B"], p["I"], p["H"], p["L"], p["bidirectional"]
    base = getattr(nn, kind)(I, H, num_layers=L, bidirectional=bi)
    x = torch.randn(T, B, I)
    lengths = _lengths(p) if packed else torch.full((B,), T, dtype=torch.long)
    if impl == "onnxruntime":  # inference on the ONNX export of the same module, padded only
        if packed or bench_peers.onnxruntime_missing():
            return None
        return bench_peers.onnxruntime_forward(base, x), None
    if impl == "naive":
        if kind != "LSTM" or packed:
            return None
        model: nn.Module = NaiveLSTM(I, H, L, bi)
        run = model
    elif impl == "torch":
        model = base
    else:
        import lstmkit

        backend = "cpu" if impl == "prepacked" else impl
        model = getattr(lstmkit, kind)(I, H, num_layers=L, bidirectional=bi, backend=backend)
        model.load_state_dict(base.state_dict())
        if impl == "prepacked":
            lstmkit.prepack(model)
    if impl != "naive":

        def run(xi):
            inp = pack_padded_sequence(xi, lengths, enforce_sorted=False) if packed else xi
            out = model(inp)[0]
            return out.data if packed else out

    xg = x.clone().requires_grad_()

    def fwd() -> None:
        with torch.no_grad():
            run(x)

    def fwdbwd() -> None:
        for q in (*model.parameters(), xg):
            q.grad = None
        run(xg).sum().backward()

    return fwd, (None if impl == "prepacked" else fwdbwd)


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(ts) / 1e9


# ----------------------------------------------------------------------------- running
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
SETTLE_S = 0.05  # idle pause before each sample when timing with several threads


def run_point(
    p: dict,
    impls: list[str],
    modes: list[str],
    repeats: int,
    max_s: float,
    clock: str = "wall",
    min_sample_s: float = 0.0,
) -> list[dict]:
    """Time every (series, mode) of one point, interleaved; return result rows.

    A sample is ``calls`` back-to-back calls (per-call time = sample / calls), enough calls
    for the sample to last ``min_sample_s``: a sub-millisecond call timed alone measures the
    caches and predictors the other series left behind, not the steady state a serving loop
    or a training loop runs in.  The series still take turns sample by sample.
    """
    now = CLOCKS[clock]
    series = [(impl, p["packed"]) for impl in impls]
    if p["packed"]:  # the padding tax: the same batch run padded
        series += [(impl, False) for impl in ("torch", "cpu") if impl in impls]
    calls, rows = {}, []
    for impl, packed in series:
        made = _make(impl, p, packed)
        if made is not None:
            for mode, fn in zip(("fwd", "fwdbwd"), made):
                if mode in modes and fn is not None:
                    calls[(impl, packed, mode)] = fn
    times: dict = {k: [] for k in calls}
    per_sample: dict = {}
    for k, fn in calls.items():  # warm-up (and compile), also decides who is too slow to repeat
        t0 = now()
        fn()
        first = now() - t0
        if first > max_s:  # time it once more: the first call may have compiled a backend
            t0 = now()
            fn()
            first = now() - t0
            if first > max_s:
                times[k].append(first)
        per_sample[k] = 1
        if not times[k]:  # run it for two sample lengths: the second one counts the calls
            for _ in range(2):
                n, t0 = 0, now()
                while n < 1000 and (n == 0 or now() - t0 < min_sample_s):
                    fn()
                    n += 1
            per_sample[k] = n
    # With several threads, a runtime's workers keep spinning for a while after a call
    # (onnxruntime's pool, OpenMP teams) and would take cores from the next series: let them
    # go idle between samples (untimed).
    settle_s = SETTLE_S if torch.get_num_threads() > 1 else 0.0
    # The order turns one place per repeat: a series that always followed onnxruntime's ran up
    # to 2.7x slower on a 2-core VM (its workers were still winding down), so no series keeps
    # that seat.
    order = list(calls.items())
    for rep in range(repeats):
        turn = rep % len(order) if order else 0
        for k, fn in order[turn:] + order[:turn]:
            if len(times[k]) and times[k][0] > max_s:
                continue
            n = per_sample[k]
            time.sleep(settle_s)
            t0 = now()
            for _ in range(n):
                fn()
            times[k].append((now() - t0) / n)
    fl = flops(p, _lengths(p))
    for (impl, packed, mode), ts in times.items():
        med = statistics.median(ts)
        work = fl * (3 if mode == "fwdbwd" else 1)
        rows.append({"point": _label(p), "impl": impl, "input": "packed" if packed else "padded",
                     "mode": mode, "median_s": med, "runs": len(ts), "calls_per_sample": per_sample[(impl, packed, mode)], "gflops": work / med / 1e9})  # fmt: skip
    for r in rows:
        t = times.get(("torch", r["input"] == "packed", r["mode"]))
        r["speedup_vs_torch"] = statistics.median(t) / r["median_s"] if t else None
        o = times.get(("onnxruntime", False, r["mode"])) if r["input"] == "padded" else None
        r["speedup_vs_onnxruntime"] = statistics.median(o) / r["median_s"] if o else None
    return rows


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), **isa_info()}  # fmt: skip


def isa_info() -> dict:
    """The CPU backend's ISA path here, the best this CPU runs, and whether it was forced."""
    from lstmkit.backends.cpu import _build

    capability = _build._torch_capability()  # where /proc/cpuinfo is missing
    best = _build.supported_isas(_build.cpu_flags(), platform.machine(), capability)[0]
    try:
        isa = _build.isa()
    except ValueError as err:
        isa = f"unavailable ({err})"
    forced = bool(os.environ.get("LSTMKIT_CPU_ISA"))
    return {"isa": isa, "isa_best": best, "isa_forced": forced, "machine_arch": platform.machine()}


_PARSER: list[argparse.ArgumentParser] = []


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (options that differ from their defaults)."""
    words = ["lstmkit", "bench"]
    for action in _PARSER[0]._actions if _PARSER else []:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest == "help" or value == action.default:
            continue
        words += [action.option_strings[0]] + ([] if value is True else [str(value)])
    return " ".join(words)


def _usage_error(message: str) -> int:
    print(f"lstmkit bench: error: {message}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    path = _grid_path(args.grid)
    if not path.is_file():
        return _usage_error(
            f"grid file {path} not found (--grid takes a JSON file like benchmarks/grid.json)"
        )
    impls = [b for b in args.backends.split(",") if b]
    modes = [m for m in args.modes.split(",") if m]
    if bad := [b for b in impls if b not in IMPLS]:
        return _usage_error(f"--backends: unknown {bad}; choose from {', '.join(IMPLS)}")
    if bad := [m for m in modes if m not in ("fwd", "fwdbwd")]:
        return _usage_error(f"--modes: unknown {bad}; choose from fwd, fwdbwd")
    if args.isa:
        return _main_per_isa(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = json.loads(path.read_text())["cpu"]
    if not args.grid and not args.no_odd_h:
        grid += [{**q, "bidirectional": False, "packed": False} for q in ODD_H_POINTS]
    if args.points != "all":
        keys = args.points.split(",")
        grid = [p for i, p in enumerate(grid) if str(i) in keys or p["kind"] in keys]
        if not grid:
            return _usage_error(
                f"--points {args.points!r} selects no grid point (indices 0..N-1 or a kind)"
            )
    for p in grid:  # a one-step (streaming) point stays one step
        p["T"] = max(min(2, p["T"]), int(p["T"] * args.scale_t))
    report = {"command": _command(args),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine(), "sgemm_gflops": sgemm_gflops(1024 if args.quick else 2048),
              "modes": modes, "clock": args.clock, "min_sample_ms": args.min_sample_ms, "rows": [],
              "skipped": []}  # fmt: skip
    if "onnxruntime" in impls and (why := bench_peers.onnxruntime_missing()):
        report["skipped"].append(f"onnxruntime: {why}")
    if "onnxruntime" in impls and "fwd" not in modes:
        report["skipped"].append("onnxruntime: inference only, and --modes has no fwd")
    if not args.json:
        m = report["machine"]
        print(
            f"sgemm: {report['sgemm_gflops']:.0f} GFLOP/s on {m['cpu']}; "
            f"CPU backend ISA path: {isa_words(m)}",
            flush=True,
        )
        for why in report["skipped"]:
            print(f"not timed: {why}", flush=True)
    for p in grid:
        rows = run_point(
            p, impls, modes, args.repeats, args.max_seconds, args.clock, args.min_sample_ms / 1e3
        )
        report["rows"] += rows
        if not args.json:
            print("\n".join(table(rows, modes)[2:]), flush=True)
    report["sgemm_gflops_end"] = sgemm_gflops(1024 if args.quick else 2048)
    report["summary"] = summary(report["rows"])
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        for k, v in report["summary"].items():
            print(
                f"geomean {k}: {v:.2f}" if "onnxruntime" in k else f"geomean x torch  {k}: {v:.2f}"
            )
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(report))
    return 0


def _main_per_isa(args: argparse.Namespace) -> int:
    """--isa: the bench once per ISA path, each in a child process; one combined report."""
    from lstmkit.backends.cpu import _build

    isas = [i for i in args.isa.split(",") if i]
    native = _build.supported_isas(
        _build.cpu_flags(), platform.machine(), _build._torch_capability()
    )
    if bad := [i for i in isas if i not in native]:
        return _usage_error(f"--isa: {bad} cannot run on this CPU; it runs {', '.join(native)}")
    words, argv = iter(_command(args).split()[2:]), []
    for w in words:  # _command's words minus the options the parent keeps
        if w in ("--isa", "--markdown"):
            next(words)  # and its value
        elif w != "--json":
            argv.append(w)
    runs = bench_peers.run_isa_children(argv, isas, native[0])
    report = {"command": _command(args), "date": runs[0]["date"], "runs": runs}
    for run in runs:
        if not args.json:
            print(f"== {run['machine']['isa']} path", flush=True)
            print("\n".join(table(run["rows"], run["modes"])), flush=True)
            for k, v in run["summary"].items():
                print(
                    f"geomean {k}: {v:.2f}"
                    if "onnxruntime" in k
                    else f"geomean x torch  {k}: {v:.2f}"
                )
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(report))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``lstmkit bench`` to the ``lstmkit`` parser."""
    p = sub.add_parser("bench", help="benchmark the backends against torch.nn on the CPU grid")
    p.add_argument("--grid", help="grid JSON (default: benchmarks/grid.json)")
    p.add_argument("--points", default="all", help="grid indices and/or kinds, e.g. 0,3 or GRU")
    p.add_argument("--backends", default=",".join(IMPLS), help=f"comma list from {IMPLS}")
    p.add_argument("--modes", default="fwd,fwdbwd", help="fwd and/or fwdbwd")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per series (median)")
    p.add_argument("--scale-t", type=float, default=1.0, help="multiply every T (quick runs)")
    p.add_argument("--max-seconds", type=float, default=5.0, help="time slower calls once")
    p.add_argument(
        "--min-sample-ms",
        type=float,
        default=20.0,
        help="repeat a fast call back to back until a sample lasts this long (steady state)",
    )
    p.add_argument("--threads", type=int, help="torch.set_num_threads before timing")
    p.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time (fair on a shared machine with --threads 1)",
    )
    p.add_argument("--quick", action="store_true", help="smaller sgemm probe")
    p.add_argument(
        "--isa",
        help="ISA paths of the CPU backend to measure, each in its own process, e.g. avx512,avx2",
    )
    p.add_argument(
        "--no-odd-h", action="store_true", help="leave out the default grid's odd-H points"
    )
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the report (docs/benchmarks.md)")
    p.set_defaults(func=main)
    _PARSER[:] = [p]
