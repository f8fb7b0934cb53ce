"""lstmkit modules in PyTorch's toolchain: TorchScript, ONNX, dynamic quantization, compile.

* ``torch.jit.script``: :meth:`TorchTwin.__prepare_scriptable__` hands TorchScript the equal
  torch.nn module sharing the parameters (plain configurations); with an extra it raises an
  error naming the extra.
* ``torch.onnx.export``: plain configurations export through torch's own kernel (the standard
  ONNX ``LSTM``/``GRU``/``RNN`` node). With ``dynamo=False`` an lstmkit extra, or a backend
  that would unroll the time loop into a fixed-length graph, fails at export with an error
  naming it; the default exporter exports an extra as the unrolled loop with static shapes,
  which onnxruntime runs with equal results (and refuses other shapes).
* ``torch.ao.quantization.quantize_dynamic``: lstmkit's classes are added to torch's default
  dynamic-quantization mapping, so naming them in ``qconfig_spec`` gives torch's int8 modules.
  (torch's *default* spec is keyed by exact type and does not match a subclass.)
* ``torch.compile``: TorchDynamo refuses every subclass of nn.RNN/GRU/LSTM unless
  ``torch._dynamo.config.allow_rnn`` is set (a global switch that also lets Dynamo trace plain
  torch.nn RNNs, "experimental" in torch). :func:`compile` scopes that switch to the calls of
  the model it compiles, so ``lstmkit.compile(model, fullgraph=True)`` traces lstmkit layers
  with no graph break and leaves every other compiled model as torch would.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

# Constructor arguments of lstmkit beyond torch.nn's, with their torch-equal defaults.
_PLAIN = {"init": None, "forget_bias": None, "chrono_max_len": None, "learn_initial_state": False,
          "peephole": False, "layer_norm": False, "input_dropout": 0.0, "recurrent_dropout": 0.0,
          "weight_drop": 0.0, "zoneout": (0.0, 0.0)}  # fmt: skip
# init only shapes the starting weights; the module computes what torch.nn computes
_HARMLESS = {"init", "forget_bias", "chrono_max_len"}


def non_torch_options(module: nn.Module) -> list[str]:
    """The lstmkit options of ``module`` that torch.nn's module cannot express."""
    found = [f"{k}={getattr(module, k)!r}" for k, v in _PLAIN.items()
             if k not in _HARMLESS and getattr(module, k, v) != v]  # fmt: skip
    if getattr(module, "spec", None) is not None and module.spec.torch_mode is None:
        found.insert(0, f"the user-defined cell {module.spec.mode!r}")
    return found


class TorchTwin:
    """Mixin of lstmkit's layers and cells: their torch.nn twin, for the toolchain."""

    def as_torch(self) -> nn.Module:
        """The torch.nn module computing the same function, sharing this module's parameters.

        Raises ``ValueError`` naming the option when an lstmkit extra has no torch.nn form.
        """
        extra = non_torch_options(self)
        if extra:
            raise ValueError(
                f"{type(self).__name__} with {', '.join(extra)} has no torch.nn equivalent "
                f"(torch.nn.{self.spec.class_name} cannot express it); build it without that "
                "option to script, quantize or export it through torch.nn"
            )
        kw = {"bias": self.bias, "device": "meta"}
        if hasattr(self, "num_layers"):  # a layer, not a cell
            kw.update(num_layers=self.num_layers, batch_first=self.batch_first,
                      dropout=self.dropout, bidirectional=self.bidirectional)  # fmt: skip
            if self.proj_size:
                kw["proj_size"] = self.proj_size
        if self.spec.nonlinearity is not None:
            kw["nonlinearity"] = self.spec.nonlinearity
        cls = self._torch_class()
        twin = cls(self.input_size, self.hidden_size, **kw)  # meta: no memory, no RNG draws
        for name, p in self.named_parameters(recurse=False):
            setattr(twin, name, p)  # the same Parameter objects: shared, not copied
        if hasattr(twin, "_init_flat_weights"):
            twin._init_flat_weights()
        twin.train(self.training)
        for attr in ("qconfig",):
            if hasattr(self, attr):
                setattr(twin, attr, getattr(self, attr))
        return twin

    def _torch_class(self) -> type:
        return self.spec.torch_class

    def __prepare_scriptable__(self) -> nn.Module:
        """torch.jit.script scripts torch.nn's twin (same parameters, same function)."""
        try:
            return self.as_torch()
        except ValueError as err:
            raise RuntimeError(f"torch.jit.script: {err}") from None


def upgrade_pickle(d: dict, specs: dict) -> None:
    """A layer's pickled ``__dict__`` from lstmkit before it subclassed torch.nn, made current:
    torch's ``_all_weights``/``_flat_weights`` and torch's ``mode`` value."""
    if "_all_weights" in d or "_flat_weights_names" not in d:
        return
    names, groups = d["_flat_weights_names"], d["num_layers"] * (1 + d["bidirectional"])
    per = len(names) // groups
    d["_all_weights"] = [names[i : i + per] for i in range(0, len(names), per)]
    d["_flat_weights"] = [d["_parameters"].get(n) for n in names]
    if d.get("mode") in specs:
        d["mode"] = specs[d["mode"]].torch_mode


def check_exportable(module: nn.Module, backend) -> None:
    """Under ONNX export, refuse what would export as something else than the module computes.

    Only the TorchScript-based exporter (``dynamo=False``) needs this: its trace unrolls the
    time loop for the example's length and batch layout, yet ``dynamic_axes`` may declare them
    dynamic. The default exporter goes through torch.export, whose graph keeps static (or
    guarded) shapes, so an extra exports as the unrolled loop that onnxruntime runs with the
    module's results and refuses other shapes.
    """
    if not torch.jit.is_tracing():
        return
    extra = non_torch_options(module)
    if extra:
        raise RuntimeError(
            f"torch.onnx.export: {type(module).__name__} with {', '.join(extra)} has no standard "
            "ONNX form, and an unrolled trace would hold one fixed sequence length and batch "
            "layout; export a model without that option"
        )
    if backend.stack is None:
        raise RuntimeError(
            f"torch.onnx.export: backend={module.backend!r} would unroll the time loop into a "
            "graph for one sequence length; use backend='auto' or 'torch' to export the "
            "standard ONNX node"
        )


def compile(model: nn.Module, **kwargs) -> Callable:  # noqa: A001 - mirrors torch.compile
    """``torch.compile(model, **kwargs)`` with Dynamo's ``allow_rnn`` on for its calls only.

    Dynamo graph-breaks on every nn.RNN/GRU/LSTM subclass (lstmkit's included) unless
    ``torch._dynamo.config.allow_rnn`` is set; this sets it while the compiled model runs
    (when Dynamo traces it), not process-wide. Plain torch.nn RNNs inside ``model`` are then
    traced too, as with torch's own switch.
    """
    from lstmkit.backends import Request, available_backends, get_backend

    # Import the lazy backends and let them load their kernels now (the CPU extension stats
    # and imports files): Dynamo cannot trace that, so it must not happen inside the trace.
    for name in available_backends():
        get_backend(name).supports(Request("lstm", torch.device("cpu"), torch.float32))
    compiled = torch.compile(model, **kwargs)

    @functools.wraps(compiled)
    def run(*args, **kw):
        with torch._dynamo.config.patch(allow_rnn=True):
            return compiled(*args, **kw)

    run.compiled = compiled  # type: ignore[attr-defined]
    return run


class _QuantizedTwin:
    """``from_float`` for torch's dynamic quantization: quantize the torch.nn twin."""

    target: type

    @classmethod
    def from_float(cls, mod: nn.Module, use_precomputed_fake_quant: bool = False):
        return cls.target.from_float(mod.as_torch(), use_precomputed_fake_quant)


def register_quantization(classes: dict[type, str]) -> None:
    """Add lstmkit classes to torch's default dynamic quantization mapping (an addition: torch's
    own entries are untouched). ``classes`` maps an lstmkit class to the name of its
    ``torch.ao.nn.quantized.dynamic`` counterpart."""
    try:
        import torch.ao.nn.quantized.dynamic as nnqd
        from torch.ao.quantization import quantization_mappings as qm
    except ImportError:  # a torch build without quantization
        return
    for cls, target in classes.items():
        twin = type(
            f"Quantized{cls.__name__}", (_QuantizedTwin,), {"target": getattr(nnqd, target)}
        )
        qm.DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS.setdefault(cls, twin)
