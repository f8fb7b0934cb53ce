"""Does lstmkit work wherever torch.nn's RNNs work? Checks across PyTorch's toolchain.

Each check runs one tool (``torch.jit.trace``, ``torch.onnx.export`` + onnxruntime,
``quantize_dynamic``...) on a small tagger (a recurrent layer, then a linear layer) and compares
the result with the *eager torch.nn* tagger holding the same weights. Run on a torch.nn tagger
and an lstmkit one, they give the two columns of docs/compatibility.md::

    python -m lstmkit.toolchain --markdown docs/compatibility.md

The tests (tests/test_dropin.py) call the same checks and assert the lstmkit column.
"""

from __future__ import annotations

import argparse
import copy
import io
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import lstmkit

TOL = 1e-5  # float32 outputs through another runtime or graph: a few ulps of reordering
QUANT_TOL = 1e-3  # lstmkit's int8 model against torch's int8 model on the same weights


class Tagger(nn.Module):
    """A recurrent layer (batch-first) and a linear read-out per step."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn
        width = rnn.hidden_size * (2 if rnn.bidirectional else 1)
        self.out = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.out(y)


def pair(kind: str = "LSTM", seed: int = 0, backend: str = "auto", **kw):
    """(torch.nn tagger, lstmkit tagger) with equal weights, in eval mode."""
    kw = {"num_layers": 2, "batch_first": True, **kw}
    torch.manual_seed(seed)
    oracle = Tagger(getattr(nn, kind)(5, 8, **kw)).eval()
    ours = Tagger(getattr(lstmkit, kind)(5, 8, backend=backend, **kw)).eval()
    ours.load_state_dict(oracle.state_dict())
    return oracle, ours


def _inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 7, 5, generator=g), torch.randn(2, 9, 5, generator=g)


def _close(got, want, what: str, tol: float = TOL) -> str:
    got, want = torch.as_tensor(got).float(), torch.as_tensor(want).float()
    diff = (got - want).abs().max().item()
    if not diff <= tol:
        raise AssertionError(f"{what}: max |difference| {diff:.2e} > {tol:.0e}")
    return f"max diff {diff:.1e}"


# ---- the checks: each returns a short detail or raises ------------------------------------
def check_isinstance(model: nn.Module, oracle: nn.Module) -> str:
    cls = type(oracle.rnn)
    if not (isinstance(model.rnn, cls) and isinstance(model.rnn, nn.RNNBase)):
        raise AssertionError(f"{type(model.rnn).__name__} is not a {cls.__name__} / nn.RNNBase")
    return f"isinstance(m, nn.{cls.__name__}) and nn.RNNBase"


def check_flat_weights(model: nn.Module, oracle: nn.Module) -> str:
    got = [tuple(w.shape) for w in model.rnn._flat_weights]
    want = [tuple(w.shape) for w in oracle.rnn._flat_weights]
    if got != want or len(model.rnn.all_weights) != len(oracle.rnn.all_weights):
        raise AssertionError(f"_flat_weights {got} != {want}")
    model.rnn.flatten_parameters()
    return f"{len(got)} flat weights, all_weights {len(model.rnn.all_weights)} groups"


def check_jit_trace(model: nn.Module, oracle: nn.Module) -> str:
    x, x2 = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x, check_trace=False)
    graph = str(traced.inlined_graph)
    name = type(oracle.rnn).__name__.lower().replace("rnn", "rnn_tanh")
    if f"aten::{name}" not in graph:
        raise AssertionError(f"the traced graph holds no aten::{name}")
    return _close(traced(x2), oracle(x2), "traced model on another shape")


def check_jit_script(model: nn.Module, oracle: nn.Module) -> str:
    x, _ = _inputs()
    return _close(torch.jit.script(model)(x), oracle(x), "scripted model")


def check_export(model: nn.Module, oracle: nn.Module) -> str:
    x, _ = _inputs()
    batch = torch.export.Dim("batch", min=2, max=64)  # torch.nn specialises the time axis
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    x2 = torch.randn(5, *x.shape[1:])
    return "dynamic batch; " + _close(program.module()(x2), oracle(x2), "exported program")


def _onnx_run(data: bytes, x: torch.Tensor):
    import onnx
    import onnxruntime as ort

    ops = {node.op_type for node in onnx.load_from_string(data).graph.node}
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0], ops


def check_onnx_legacy(model: nn.Module, oracle: nn.Module) -> str:
    x, x2 = _inputs()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch", 1: "time"}})  # fmt: skip
    got, ops = _onnx_run(buf.getvalue(), x2)
    node = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN"}[type(oracle.rnn).__name__]
    if node not in ops:
        raise AssertionError(f"no ONNX {node} node (ops: {sorted(ops)})")
    return f"ONNX {node} node; onnxruntime " + _close(got, oracle(x2).detach(), "onnxruntime")


def check_onnx_dynamo(model: nn.Module, oracle: nn.Module) -> str:
    x, _ = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    buf = io.BytesIO()
    program.save(buf)
    got, _ = _onnx_run(buf.getvalue(), x)
    return "onnxruntime " + _close(got, oracle(x).detach(), "onnxruntime")


def check_quantize(model: nn.Module, oracle: nn.Module) -> str:
    from torch.ao.quantization import quantize_dynamic

    x, _ = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = quantize_dynamic(oracle, {type(oracle.rnn), nn.Linear}, dtype=torch.qint8)
        got = quantize_dynamic(model, {type(model.rnn), nn.Linear}, dtype=torch.qint8)
    if "quantized" not in type(got.rnn).__module__:
        raise AssertionError(f"the recurrent layer stayed {type(got.rnn).__name__} in float")
    return f"{type(got.rnn).__name__} int8; vs torch's int8 " + _close(
        got(x), want(x), "int8 model", QUANT_TOL
    )


def check_func_grad(model: nn.Module, oracle: nn.Module) -> str:
    from torch.func import functional_call, grad

    x, _ = _inputs()

    def grads(m):
        params = {k: v.detach() for k, v in m.named_parameters()}
        return grad(lambda p: functional_call(m, p, (x,)).square().sum())(params)

    got, want = grads(model), grads(oracle)
    return max((_close(got[k], want[k], k) for k in want), key=lambda s: float(s.split()[-1]))


def check_double_backward(model: nn.Module, oracle: nn.Module) -> str:
    x, _ = _inputs()

    def penalty_grads(m):
        xx = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(m(xx).square().sum(), xx, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), list(m.parameters()))

    details = [_close(a, b, "gradient of the penalty", 1e-4)
               for a, b in zip(penalty_grads(model), penalty_grads(oracle))]  # fmt: skip
    return details[0]


def check_compile(model: nn.Module, oracle: nn.Module) -> str:
    x, _ = _inputs()
    torch._dynamo.reset()
    is_ours = isinstance(model.rnn, lstmkit.nn.RNNBase)
    compiled = (lstmkit.compile if is_ours else torch.compile)(model, fullgraph=True)
    out = compiled(x)
    return ("lstmkit.compile: " if is_ours else "") + _close(out, oracle(x), "compiled model")


def check_autocast(model: nn.Module, oracle: nn.Module) -> str:
    x, _ = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model(x)
    return "bfloat16 vs float32 " + _close(got, oracle(x), "autocast output", 3e-2)


@dataclass(frozen=True)
class Row:
    what: str
    check: Callable[[nn.Module, nn.Module], str]


ROWS = [
    Row("`isinstance(m, nn.LSTM)` / `nn.RNNBase`", check_isinstance),
    Row("`m._flat_weights`, `m.all_weights`, `flatten_parameters()`", check_flat_weights),
    Row("`torch.jit.trace` (run on another shape)", check_jit_trace),
    Row("`torch.jit.script`", check_jit_script),
    Row("`torch.export.export` (dynamic batch)", check_export),
    Row("`torch.onnx.export(..., dynamo=False)` + onnxruntime", check_onnx_legacy),
    Row("`torch.onnx.export` (default exporter) + onnxruntime", check_onnx_dynamo),
    Row("`quantize_dynamic(m, {<layer class>, nn.Linear})`", check_quantize),
    Row("`torch.func.grad(functional_call(...))`", check_func_grad),
    Row("double backward (gradient penalty)", check_double_backward),
    Row("`torch.compile(fullgraph=True)`", check_compile),
    Row("CPU bfloat16 autocast", check_autocast),
]


def run(row: Row, model: nn.Module, oracle: nn.Module) -> tuple[bool, str]:
    """(passed, detail) of one check; an exception is a failure, reported by type and text."""
    log = getattr(model.rnn, "_dispatch_log", None)
    if log is not None:
        log.clear()
    try:
        detail = row.check(model, oracle)
        if log:  # lstmkit: say which backend ran inside the tool
            detail += f" (backend {log['backend']!r})"
        return True, detail
    except Exception as err:  # noqa: BLE001 - the table reports every failure as found
        text = " ".join(str(err).split())[:150].replace("|", "\\|")
        return False, f"{type(err).__name__}: {text}"


def table(kind: str = "LSTM") -> list[str]:
    """The rows for one layer class: torch.nn's and lstmkit's results side by side."""
    oracle, ours = pair(kind)
    lines = [f"| what the user does | torch.nn.{kind} | lstmkit.{kind} |", "|---|---|---|"]
    for row in ROWS:
        cells = []
        for model in (copy.deepcopy(oracle), copy.deepcopy(ours)):
            ok, detail = run(row, model, oracle)
            cells.append(("works: " if ok else "**fails**: ") + detail)
        lines.append(f"| {row.what} | {cells[0]} | {cells[1]} |")
    return lines


def markdown(kinds: tuple[str, ...] = ("LSTM", "GRU", "RNN")) -> str:
    lines = [
        "# Compatibility with PyTorch's toolchain",
        "",
        "Generated by `python -m lstmkit.toolchain --markdown docs/compatibility.md` (do not "
        "edit by hand): each row runs the tool on a 2-layer batch-first "
        "`LSTM(5, 8)` (`GRU`, `RNN`) + `Linear` tagger and compares with the eager torch.nn "
        f"tagger on the same weights (float32 tolerance {TOL:g}; int8: {QUANT_TOL:g} against "
        "torch's int8 model). `torch.compile` is called as `lstmkit.compile` for lstmkit "
        "(Dynamo's `allow_rnn` scoped to that model; see docs/architecture.md). In the lstmkit "
        "column, the backend that ran inside the tool is named (`jit.script` scripts the "
        "torch.nn twin; `quantize_dynamic` swaps in torch's int8 module).",
        "",
        f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()} CPU.",
    ]
    for kind in kinds:
        lines += ["", f"## {kind}", "", *table(kind)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lstmkit.toolchain", description=__doc__)
    parser.add_argument("--markdown", metavar="PATH", help="write the table to PATH")
    parser.add_argument("--kind", choices=["LSTM", "GRU", "RNN"], help="one class only")
    args = parser.parse_args(argv)
    text = markdown((args.kind,) if args.kind else ("LSTM", "GRU", "RNN"))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
