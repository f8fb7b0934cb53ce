"""The training loop: progress bar, per-epoch summary line, early stopping, checkpoints.

Usable from a notebook::

    from lstmkit.train import Trainer, TrainConfig
    summary = Trainer(TrainConfig.for_task("sentiment", epochs=2)).fit()
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable

import torch

from lstmkit import __version__
from lstmkit.data.errors import DataError, check_writable_dir
from lstmkit.train import checkpoint as ck
from lstmkit.train.config import TrainConfig
from lstmkit.train.diagnostics import Monitor, Problem
from lstmkit.train.distributed import Dist, setup, teardown
from lstmkit.train.optim import make_optimizer, update_average, warmup_cosine
from lstmkit.train.progress import Progress
from lstmkit.train.state import TrainState
from lstmkit.train.tasks import make_task


class TrainingStopped(RuntimeError):
    """Diagnostics stopped training before any good model existed."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def _timestamp_name(cfg: TrainConfig, stamp: int) -> str:
    return f"{cfg.task}-{cfg.model}-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(stamp))


class Trainer:
    """Train one run into ``run_dir`` (default ``<out_dir>/<name or task-model-time>``).

    ``resume=True`` continues the run in ``run_dir`` from its last checkpoint, with the
    config saved there. ``log`` receives the human-readable lines (``print`` by default).
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        run_dir: str | None = None,
        resume: bool = False,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.dist: Dist = setup()
        self.progress = progress and self.dist.main
        self._log = log or (lambda s: print(s, flush=True))
        if resume:
            if not run_dir:
                raise DataError(
                    "--resume needs the run directory", fix="lstmkit train --resume RUN_DIR"
                )
            from lstmkit.train.run import check_run_dir

            saved = check_run_dir(run_dir, need_complete=False)
            if os.path.isfile(os.path.join(run_dir, "summary.json")):
                raise DataError(
                    "this run is already complete (summary.json exists)",
                    run_dir,
                    "start a new run, or evaluate it with `lstmkit evaluate`",
                )
            config = TrainConfig.from_dict(saved["config"])
            # a damaged checkpoint is reported now, before the data loads
            self._checkpoint = ck.load_checkpoint(run_dir)
        self.config = config or TrainConfig.for_task("sentiment")
        self.config.validate()
        # before any data is loaded: a device or backend this machine lacks fails at once
        self.device = self._pick_device()
        self._check_backend()
        if run_dir is None:
            stamp = self.dist.broadcast_int(int(time.time()))
            run_dir = os.path.join(
                self.config.out_dir, self.config.name or _timestamp_name(self.config, stamp)
            )
        # a run directory that cannot be written fails now, not after the data has loaded
        check_writable_dir(run_dir, "--resume" if resume else "--out-dir")
        if not resume and os.path.exists(os.path.join(run_dir, "config.json")):
            raise DataError(
                "the run directory already exists",
                run_dir,
                "choose another --name, delete it, or continue it with --resume",
            )
        self.dist.barrier()
        self.run_dir = run_dir
        self.resume = resume

    def log(self, line: str) -> None:
        if self.dist.main:
            self._log(line)

    def _setup(self):
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif self.dist.world > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.dist.world))
        self.task = make_task(cfg)
        torch.manual_seed(cfg.seed)
        self.model = self.task.build_model()
        self.model.to(self.device)
        self.task.device = self.device
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = make_optimizer(self.model, self.params, cfg.lr, cfg.weight_decay)
        # weight averaging: an exponential moving average of the weights is what gets
        # validated, saved and tested (smoother than any single step's weights)
        self.avg = copy.deepcopy(self.model).requires_grad_(False) if cfg.average else None
        self.monitor = Monitor(lr=cfg.lr, clip=cfg.clip, stall_steps=cfg.stall_steps)
        self._done, self._total = 0, len(self.task.train_batches(0))  # batches per epoch

    def _pick_device(self) -> torch.device:
        want = self.config.device
        if self.dist.world > 1:
            return self.dist.device
        if want == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise DataError(f"--device {want}: no CUDA GPU is available", fix="use --device cpu")
        return torch.device(want)

    def _spent(self, state: TrainState) -> float:
        """Training seconds so far (resumed epochs included): the mean over the processes, so
        every process takes the same decisions from it."""
        spent = state.elapsed + time.perf_counter() - self._epoch_start
        return self.dist.all_sum(spent) / self.dist.world

    def _lr_factor(self, step: int) -> float:
        """Warm-up + cosine over the share of all planned steps done.

        Steps only, never the clock: the same seed on the same machine gives the same model,
        however busy the machine is. A ``--time-budget`` may cut the run short; the summary
        then says so (``stopped_by_time_budget``)."""
        cfg = self.config
        steps = max(1, cfg.epochs * self._total)
        return warmup_cosine(step / steps, cfg.warmup, 1.0 / steps)

    @property
    def scored_model(self) -> torch.nn.Module:
        """The weights that are validated and saved: the running average when there is one."""
        return self.avg if self.avg is not None else self.model

    def _check_backend(self) -> None:
        """A named ``--backend`` must be able to run on the chosen device (else exit 2 now)."""
        name = self.config.backend
        if name == "auto":
            return
        from lstmkit.backends import Request, select_backend
        from lstmkit.reference.spec import spec

        request = Request(
            mode=spec(self.config.model).mode, device=self.device, dtype=torch.float32
        )
        try:
            select_backend(name, request)
        except (ValueError, RuntimeError) as e:
            fix = "use --backend auto (the fastest backend this machine has)"
            if self.device.type != "cuda":
                fix += f", or run on a machine with a CUDA GPU (here: {self.device})"
            raise DataError(f"--backend {name} cannot train here: {e}", fix=fix) from e

    def _write_static(self) -> None:
        if not self.dist.main:
            return
        os.makedirs(self.run_dir, exist_ok=True)
        rnn = self.model.rnn
        ck.atomic_write_json(
            os.path.join(self.run_dir, "config.json"),
            {
                "format_version": ck.FORMAT_VERSION,
                "lstmkit_version": __version__,
                "kind": self.task.kind,
                "metric": self.task.metric,
                "rnn_class": f"{type(rnn).__module__}.{type(rnn).__name__}",
                "world_size": self.dist.world,
                "config": self.config.to_dict(),
                "model": {"class": type(self.model).__name__, "kwargs": self.task.model_kwargs},
            },
        )
        for name, text in self.task.artifacts().items():
            ck.atomic_write_text(os.path.join(self.run_dir, name), text)

    def _better(self, valid: dict, state: TrainState) -> bool:
        """Better validation metric; on a tie (small validation sets), lower validation loss."""
        value, best = valid[self.task.metric], state.best
        if best is None:
            return True
        if value == best and "loss" in valid and state.best_loss is not None:
            return valid["loss"] < state.best_loss
        return value > best if self.task.higher_is_better else value < best

    def fit(self) -> dict:
        """Train, early-stop on the validation metric, test the best weights; returns the summary."""
        try:
            return self._fit()
        finally:
            teardown(self.dist)

    def _resume_state(self) -> TrainState:
        """The counters, weights, optimiser and RNG of the last checkpoint (or a fresh start)."""
        state = TrainState()
        if not self.resume:
            return state
        loaded, self._checkpoint = self._checkpoint, None
        if loaded is None:
            self.log(f"no checkpoint in {self.run_dir} yet: starting from scratch")
            return state
        tensors, info = loaded
        ck.restore(self.model, self.opt, tensors, info, self.run_dir)
        if self.avg is not None:
            avg = {k[4:]: v for k, v in tensors.items() if k.startswith("avg.")}
            self.avg.load_state_dict(avg or self.model.state_dict())
        state = TrainState.from_dict(info)
        self.monitor.load_state_dict(state.monitor)
        self.log(f"resuming {self.run_dir} after epoch {state.epoch}")
        return state

    def _fit(self) -> dict:
        cfg, t_start = self.config, time.perf_counter()
        self._setup()
        state = self._resume_state()
        self._write_static()
        if self.dist.main:
            ck.trim_metrics(self.run_dir, state.epoch)
        stopped: Problem | None = None
        metric = self.task.metric
        for epoch in range(state.epoch, cfg.epochs):
            t0 = time.perf_counter()
            self._epoch_start = t0
            train_loss, stopped = self._train_epoch(epoch, state)
            if stopped is not None:
                break
            # cut short: the budget ended this epoch early, or epochs are left to train
            out_of_time = self._out_of_time(state) and (
                self._done < self._total or epoch + 1 < cfg.epochs
            )
            valid = self.task.evaluate(self.scored_model, "valid")
            improved = self._better(valid, state)
            if improved:
                state.best, state.best_epoch, state.bad_epochs = valid[metric], epoch + 1, 0
                state.best_loss = valid.get("loss")
                if self.dist.main:
                    ck.save_tensors(
                        os.path.join(self.run_dir, "model.safetensors"),
                        self.scored_model.state_dict(),
                    )
            else:
                state.bad_epochs += 1
            gate = self.monitor.check_gates(
                state.step, self.model, self.task.probe(self.model).detach()
            )
            if gate is not None:
                self.log(str(gate))
            secs = time.perf_counter() - t0
            state.elapsed += secs
            row = {
                "epoch": epoch + 1,
                "step": state.step,
                "train_loss": train_loss,
                "batches": f"{self._done}/{self._total}",
                **{f"valid_{k}": v for k, v in valid.items()},
                "seconds": round(secs, 2),
            }
            state.epoch = epoch + 1
            state.monitor = self.monitor.state_dict()
            state.time_budget_hit = out_of_time
            if self.dist.main:
                ck.append_metrics(self.run_dir, row)
                extra = None
                if self.avg is not None:
                    extra = {f"avg.{k}": v for k, v in self.avg.state_dict().items()}
                ck.save_checkpoint(self.run_dir, self.model, self.opt, state.to_dict(), extra)
            self.log(
                f"epoch {epoch + 1}/{cfg.epochs}  train_loss {train_loss:.4f}  "
                f"valid_{metric} {valid[metric]:.4f}{'  *best*' if improved else ''}  "
                f"({secs:.1f}s"
                + (f", {self._done}/{self._total} batches" if self._done < self._total else "")
                + ")"
            )
            if out_of_time:
                self.log(
                    f"time budget of {cfg.time_budget:g}s used up after step {state.step} of "
                    f"{cfg.epochs * self._total}: stopping here; this result depends on the "
                    "machine's speed (--time-budget 0 trains every epoch)"
                )
                break
            if cfg.patience and state.bad_epochs >= cfg.patience:
                self.log(f"early stopping: no better valid_{metric} for {cfg.patience} epochs")
                break
        if stopped is not None:
            self.log(str(stopped))
            if state.best_epoch is None:
                if self.dist.main:
                    ck.atomic_write_json(
                        os.path.join(self.run_dir, "diagnosis.json"),
                        {
                            "kind": stopped.kind,
                            "step": stopped.step,
                            "message": stopped.message,
                            "advice": stopped.advice,
                        },
                    )
                raise TrainingStopped(stopped)
            self.log(f"keeping the last good model (epoch {state.best_epoch})")
        return self._finish(state, stopped, time.perf_counter() - t_start)

    def _train_epoch(self, epoch: int, state: TrainState) -> tuple[float, Problem | None]:
        from lstmkit.data.batching import shard

        cfg, d = self.config, self.dist
        batches = self.task.train_batches(epoch)
        self._done, self._total = 0, len(batches)
        bar = None
        if self.progress:
            bar = Progress(len(batches), f"epoch {epoch + 1}/{cfg.epochs}", self.log)
        self.model.train()
        total, count = 0.0, 0
        try:
            for batch in batches:
                part = shard(batch, d.rank, d.world)
                self.opt.zero_grad(set_to_none=True)
                if part:
                    loss_sum, n = self.task.batch_loss(self.model, part)
                else:
                    loss_sum, n = sum(p.sum() for p in self.params) * 0.0, 0
                n_global = d.all_sum(n)
                (loss_sum / n_global).backward()
                d.all_reduce_grads(self.params)
                norm = float(
                    torch.nn.utils.clip_grad_norm_(
                        self.params, cfg.clip if cfg.clip > 0 else float("inf")
                    )
                )
                loss_global = d.all_sum(float(loss_sum.detach())) / n_global
                state.step += 1
                problem = self.monitor.check_step(state.step, loss_global, norm)
                if problem is not None:
                    if problem.fatal:
                        return total / max(count, 1), problem
                    self.log(str(problem))
                if cfg.schedule == "cosine":
                    factor = self._lr_factor(state.step - 1)
                    for group in self.opt.param_groups:
                        group["lr"] = cfg.lr * factor
                self.opt.step()
                if self.avg is not None:
                    update_average(self.avg, self.model, cfg.average, state.step)
                self._done += 1
                total, count = total + loss_global * n_global, count + n_global
                # the clock is read (and agreed on across processes) once per step; it may
                # stop the run, but it never changes what a step does
                if cfg.time_budget and self._spent(state) > cfg.time_budget:
                    break
                if bar is not None:
                    bar.update(total / count)
        finally:
            if bar is not None:
                bar.close()
        return total / max(count, 1), None

    def _out_of_time(self, state: TrainState) -> bool:
        """True once training time (all epochs, resumed ones included) exceeds the budget."""
        budget = self.config.time_budget
        return bool(budget) and self._spent(state) > budget

    def _finish(self, state: TrainState, stopped: Problem | None, seconds: float) -> dict:
        from lstmkit.train.run import load_weights

        load_weights(self.model, os.path.join(self.run_dir, "model.safetensors"), self.dist)
        metric = self.task.metric
        summary = {
            "task": self.config.task,
            "run_dir": self.run_dir,
            "epochs_run": state.epoch,
            "best_epoch": state.best_epoch,
            f"valid_{metric}": state.best,
        }
        test = self.task.evaluate(self.model, "test")
        summary.update({f"test_{k}": v for k, v in test.items()})
        if self.config.baseline and self.dist.main:
            summary["baseline"] = self.task.baseline()
        extra = getattr(self.task, "showcase", None)
        if extra is not None and self.dist.main:
            summary["examples"] = extra(self.model)
        summary["stopped_by_diagnostics"] = None if stopped is None else stopped.kind
        summary["stopped_by_time_budget"] = state.time_budget_hit
        summary["time_budget"] = self.config.time_budget or None
        summary["steps"] = state.step
        summary["planned_steps"] = self.config.epochs * self._total
        summary["diagnostics"] = [str(p) for p in self.monitor.problems]
        summary["train_seconds"] = round(state.elapsed, 1)
        summary["total_seconds"] = round(seconds, 1)
        summary["world_size"] = self.dist.world
        summary["format_version"] = ck.FORMAT_VERSION
        if self.dist.main:
            ck.atomic_write_json(os.path.join(self.run_dir, "summary.json"), summary)
        self.dist.barrier()
        return summary
