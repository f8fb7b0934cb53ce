"""Loading a finished run: the stable API other tools (``explain``, ``report``) build on."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from lstmkit.data.errors import DataError
from lstmkit.data.vocab import CharVocab
from lstmkit.train import checkpoint as ck
from lstmkit.train.config import TrainConfig


def check_run_dir(run_dir: str, need_complete: bool = True) -> dict:
    """Validate a run directory and return its ``config.json`` contents.

    Raises :class:`DataError` (clear message) when it is missing, not a run, written by
    another format version, or (``need_complete``) not finished: a run is complete only
    once ``summary.json`` exists.
    """
    if not os.path.isdir(run_dir):
        raise DataError(
            f"run directory not found: {run_dir}",
            fix="pass a directory created by `lstmkit train` (see runs/)",
        )
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise DataError(
            "not a run directory (no config.json)",
            run_dir,
            "pass a directory created by `lstmkit train`",
        )
    saved = ck.read_json(path, "retrain this run (config.json is written first and never changed)")
    version = saved.get("format_version") if isinstance(saved, dict) else None
    if version != ck.FORMAT_VERSION:
        raise DataError(
            f"this run was written by lstmkit {saved.get('lstmkit_version', '?') if isinstance(saved, dict) else '?'} "
            f"(run format {version}); this lstmkit reads run format {ck.FORMAT_VERSION}",
            run_dir,
            "retrain with this version (`lstmkit train ...`), or use the lstmkit "
            "version that wrote it",
        )
    if need_complete and not os.path.isfile(os.path.join(run_dir, "summary.json")):
        raise DataError(
            "this run is not complete (no summary.json): it was interrupted or is still training",
            run_dir,
            f"finish it with `lstmkit train --resume {run_dir}`, or wait for it",
        )
    return saved


def load_weights(model: torch.nn.Module, path: str, dist=None) -> None:
    """Load a safetensors state dict into ``model`` (no pickle involved)."""
    if dist is not None:
        dist.barrier()
    state = ck.load_tensors(path, _RETRAIN)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(
            f"the weights do not fit the model in config.json ({str(e).splitlines()[0]})",
            path,
            "retrain this run (its files come from different runs)",
        ) from e


@dataclass
class Run:
    """A trained run, ready to use.

    Attributes (stable API):

    * ``model`` -- the ``torch.nn.Module``, in eval mode. Text classifiers take
      ``(ids (B, T) int64, lengths (B,))`` and return logits ``(B, n_classes)``, and offer
      ``model.step_probabilities(token_ids) -> (T, n_classes)``: the class probabilities
      after each prefix of one sequence (what ``lstmkit explain`` plots).
    * ``config`` -- the :class:`TrainConfig` of the run.
    * ``tokenizer`` (alias ``vocab``) -- :class:`~lstmkit.data.vocab.CharVocab` for text
      tasks (``encode(text, max_len)``/``decode(ids)``/``itos``), else ``None``.
    * ``labels`` -- class names; ``labels[i]`` is logit ``i`` (empty for non-classifiers).
    * ``summary`` -- the final metrics (``summary.json``); ``run_dir`` -- where it lives.
    * ``predict(texts) -> list[(label, probability)]`` -- the most probable label of each text.
    """

    run_dir: str
    model: torch.nn.Module
    config: TrainConfig
    tokenizer: CharVocab | None
    labels: list[str]
    summary: dict
    kind: str

    @property
    def vocab(self) -> CharVocab | None:
        return self.tokenizer

    def encode(self, text: str) -> torch.Tensor:
        """The model input for one text: ``(T,)`` char ids or ``(T, 2)`` char+bigram ids.

        ``T`` is the number of characters kept (long texts keep head and tail, see
        :meth:`tokens`); feed it to ``model.step_probabilities``.
        """
        if self.tokenizer is None:
            raise DataError("this run has no text tokenizer", self.run_dir)
        from lstmkit.train.tasks import encode_text

        return encode_text(self.tokenizer, text, self.config.max_len)

    def tokens(self, text: str) -> list[str]:
        """The characters of ``text`` the model reads, aligned with the rows of :meth:`encode`."""
        if self.tokenizer is None:
            raise DataError("this run has no text tokenizer", self.run_dir)
        return [text[i] for i in self.tokenizer.positions(len(text), self.config.max_len or None)]

    @torch.no_grad()
    def predict_proba(self, texts: list[str]) -> torch.Tensor:
        """``(len(texts), n_classes)`` class probabilities."""
        if self.kind != "classify" or self.tokenizer is None:
            raise DataError(
                f"`predict` works on text classifiers; this run is a '{self.config.task}' run",
                self.run_dir,
                "use `lstmkit evaluate` for its metrics",
            )
        from lstmkit.data.batching import pad_tensors

        for i, t in enumerate(texts):
            if not t.strip():
                raise DataError("empty text", f"input {i + 1}", "give every input some text")
        if not texts:
            return torch.zeros(0, len(self.labels))
        out = torch.empty(len(texts), len(self.labels))
        for lo in range(0, len(texts), 256):
            ids, lengths = pad_tensors([self.encode(t) for t in texts[lo : lo + 256]])
            dev = next(self.model.parameters()).device
            out[lo : lo + len(lengths)] = torch.softmax(self.model(ids.to(dev), lengths), -1).cpu()
        return out

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """``[(label, probability), ...]``, one per text, most probable label first."""
        probs = self.predict_proba(list(texts))
        best = probs.argmax(1)
        return [(self.labels[int(b)], float(p[b])) for b, p in zip(best, probs)]

    def generate(
        self, prompt: str = "", length: int = 100, temperature: float = 0.8, seed: int = 0
    ) -> str:
        """Sample ``length`` characters after ``prompt`` (language-model runs)."""
        if self.kind != "lm":
            raise DataError(
                f"`generate` needs a language-model run; this is '{self.config.task}'",
                self.run_dir,
                "train one with `lstmkit train --task lm`",
            )
        g = torch.Generator().manual_seed(seed)
        ids = self.tokenizer.encode(prompt) if prompt else []
        return prompt + self.tokenizer.decode(self.model.generate(ids, length, temperature, g))


def load_run(run_dir: str) -> Run:
    """Load a complete run directory (weights via safetensors, never pickle) in eval mode."""
    from lstmkit.train.tasks import build_model_for_run

    saved = check_run_dir(run_dir)
    config = TrainConfig.from_dict(saved["config"])
    # Where a model runs is a choice of this process, not of the run that trained it (a run
    # trained with --backend triton on a GPU must still load for predict on a CPU).
    config = dataclasses.replace(config, backend="auto")
    kind = saved.get("kind", "classify")
    kwargs = (saved.get("model") or {}).get("kwargs") or {}
    needs_vocab = kind == "lm" or bool(kwargs.get("vocab_size"))  # text runs have a tokenizer
    vocab = None
    vpath = os.path.join(run_dir, "vocab.json")
    if os.path.isfile(vpath):
        try:
            with open(vpath, encoding="utf-8") as f:
                vocab = CharVocab.from_json(f.read())
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"vocab.json is damaged ({e})", vpath, _RETRAIN) from e
    elif needs_vocab:
        raise DataError(
            f"vocab.json is missing: this '{config.task}' run reads text through it",
            vpath,
            "copy the run directory whole (vocab.json belongs with model.safetensors), "
            "or " + _RETRAIN,
        )
    lpath = os.path.join(run_dir, "labels.json")
    labels = ck.read_json(lpath, _RETRAIN) if os.path.isfile(lpath) else []
    if kind == "classify" and not labels:
        raise DataError("labels.json is missing or empty", lpath, _RETRAIN)
    model = build_model_for_run(config, saved, vocab, labels)
    load_weights(model, os.path.join(run_dir, "model.safetensors"))
    model.eval()
    summary = ck.read_json(os.path.join(run_dir, "summary.json"), _RETRAIN)
    return Run(run_dir, model, config, vocab, labels, summary, kind)


_RETRAIN = "retrain this run (`lstmkit train ...`; its saved config is in config.json)"
