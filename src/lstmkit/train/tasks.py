"""Task adapters: data, model, per-batch loss, evaluation and baseline for each task.

A task turns a :class:`TrainConfig` into what the :class:`Trainer` needs. Batches are
lists of example indices; ``batch_loss`` returns the *summed* loss and the number of
items, so the trainer can normalise by the global batch (exact under data parallelism).
"""

from __future__ import annotations

import json
import math

import torch
import torch.nn.functional as F

from lstmkit.data import batching, series, text
from lstmkit.data.errors import DataError
from lstmkit.data.vocab import CharVocab
from lstmkit.train.config import TrainConfig
from lstmkit.train.models import CharLM, Forecaster, SequenceClassifier

# "Although ..., but ..." sentences: the clause after 但是 carries the verdict (tutorial 一).
TURN_EXAMPLES = [
    ("虽然价格有点贵，但是质量非常好，很满意。", "pos"),
    ("虽然包装很漂亮，但是用了两天就坏了，太失望了。", "neg"),
    ("虽然房间有点小，但是服务很周到，下次还会再来。", "pos"),
    ("虽然服务态度不错，但是房间又脏又吵，不会再来了。", "neg"),
    ("虽然物流慢了点，但是书的内容很精彩，值得一读。", "pos"),
    ("虽然作者很有名，但是这本书写得很无聊，浪费钱。", "neg"),
]


def encode_text(vocab: CharVocab, text_: str, max_len: int | None) -> torch.Tensor:
    """Model input for one text: ``(T,)`` char ids, or ``(T, 2)`` char+bigram ids."""
    ids = torch.tensor(vocab.encode(text_, max_len or None), dtype=torch.long)
    if vocab.bigrams:
        big = torch.tensor(vocab.encode_bigrams(text_, max_len or None), dtype=torch.long)
        ids = torch.stack([ids, big], dim=1)
    return ids


class Task:
    device = torch.device("cpu")  # the Trainer sets this; batches are moved there
    metric = "accuracy"
    higher_is_better = True
    kind = "classify"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def train_batches(self, epoch: int) -> list[list[int]]:
        return batching.bucket_batches(
            self.train_lengths(), self.cfg.batch_size, True, self.cfg.seed, epoch
        )

    def baseline(self) -> dict:
        return {}

    def artifacts(self) -> dict[str, str]:
        return {}


class ClassifyTask(Task):
    """Text (``sentiment``, ``text``) or numeric series (``vowels``, ``series``) classification."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.is_text = cfg.task_spec.uses("text")
        self.data = cfg.task_spec.load(cfg)
        self.labels = list(self.data.label_names)
        if len(self.labels) < 2:
            raise DataError(
                f"only one label ({self.labels}) in the training data",
                self.data.source,
                "classification needs at least two labels",
            )
        if cfg.max_train:
            tr = self.data.train
            cut = slice(0, cfg.max_train)
            if self.is_text:
                self.data.train = text.LabeledTexts(tr.texts[cut], tr.labels[cut])
            else:
                self.data.train = series.SeriesSet(tr.series[cut], tr.labels[cut])
        if self.is_text:
            self.vocab = CharVocab.build(
                self.data.train.texts,
                min_freq=cfg.min_freq,
                bigram_min_freq=cfg.bigram_min_freq if cfg.bigrams else None,
            )
            if cfg.contrast_examples:
                # synthetic "虽然 A，但是 B" texts (label of B) join the training split only
                tr = self.data.train
                extra = text.contrast_examples(tr, cfg.contrast_examples, cfg.split_seed)
                self.data.train = text.LabeledTexts(
                    tr.texts + extra.texts, tr.labels + extra.labels
                )
                self.n_real_train = len(tr)
            self.encode_all()

    def encode_all(self) -> None:
        self.encoded = {
            name: [encode_text(self.vocab, t, self.cfg.max_len) for t in part.texts]
            for name, part in self._splits().items()
        }

    def _splits(self) -> dict:
        return {"train": self.data.train, "valid": self.data.valid, "test": self.data.test}

    def train_lengths(self) -> list[int]:
        if self.is_text:
            return [s.shape[0] for s in self.encoded["train"]]
        return [s.shape[0] for s in self.data.train.series]

    def build_model(self) -> SequenceClassifier:
        c = self.cfg
        self.model_kwargs = dict(
            n_classes=len(self.labels),
            vocab_size=len(self.vocab) if self.is_text else 0,
            in_channels=0 if self.is_text else self.data.channels,
            bigram_vocab_size=len(self.vocab.bigrams) if self.is_text else 0,
            pool_embeddings=c.pool_embeddings and self.is_text,
            embed_dropout=c.embed_dropout,
            token_dropout=c.token_dropout if self.is_text else 0.0,
            embed_size=c.embed_size,
            hidden_size=c.hidden_size,
            num_layers=c.layers,
            bidirectional=c.bidirectional,
            dropout=c.dropout,
            kind=c.model,
            backend=c.backend,
        )
        model = SequenceClassifier(**self.model_kwargs)
        if not self.is_text:
            allx = torch.cat(self.data.train.series)
            model.mean.copy_(allx.mean(0))
            model.std.copy_(allx.std(0).clamp_min(1e-6))
        return model

    def inputs(self, split: str, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.is_text:
            x, lengths = batching.pad_tensors([self.encoded[split][i] for i in idx])
        else:
            part = self._splits()[split]
            x, lengths = batching.pad_tensors([part.series[i] for i in idx])
        return x.to(self.device), lengths

    def batch_loss(self, net, idx: list[int], split: str = "train"):
        x, lengths = self.inputs(split, idx)
        y = torch.tensor([self._splits()[split].labels[i] for i in idx], device=self.device)
        logits = net(x, lengths)
        smooth = self.cfg.label_smoothing if split == "train" else 0.0
        return F.cross_entropy(logits, y, reduction="sum", label_smoothing=smooth), len(idx)

    def probe(self, model) -> torch.Tensor:
        idx = list(range(min(16, len(self.data.train))))
        x, _ = self.inputs("train", idx)
        return model.embed_inputs(x)

    @torch.no_grad()
    def evaluate(self, model, split: str) -> dict:
        model.eval()
        part = self._splits()[split]
        n = len(part)
        lengths = (
            [s.shape[0] for s in self.encoded[split]]
            if self.is_text
            else [s.shape[0] for s in part.series]
        )
        loss, correct = 0.0, 0
        for idx in batching.bucket_batches(lengths, 256, False):
            x, lens = self.inputs(split, idx)
            logits = model(x, lens)
            y = torch.tensor([part.labels[i] for i in idx], device=self.device)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        model.train()
        return {"loss": loss / n, "accuracy": correct / n}

    def artifacts(self) -> dict[str, str]:
        out = {"labels.json": json.dumps(self.labels, ensure_ascii=False)}
        if self.is_text:
            out["vocab.json"] = self.vocab.to_json()
        return out

    def showcase(self, model) -> list[dict] | None:
        """Sentiment only: the model's verdict on contrastive "虽然…但是…" sentences."""
        if not self.cfg.task_spec.uses("showcase"):
            return None
        model.eval()
        with torch.no_grad():
            ids, lengths = batching.pad_tensors(
                [encode_text(self.vocab, t, self.cfg.max_len) for t, _ in TURN_EXAMPLES]
            )
            probs = torch.softmax(model(ids.to(self.device), lengths), dim=-1).cpu()
        return [
            {
                "text": t,
                "expected": exp,
                "predicted": self.labels[int(p.argmax())],
                "p_pos": round(float(p[self.labels.index("pos")]), 3),
            }
            for (t, exp), p in zip(TURN_EXAMPLES, probs)
        ]

    def baseline(self) -> dict:
        if not self.is_text:
            return {}
        from lstmkit.train.baselines import tfidf_logreg

        data = self.data
        n_real = getattr(self, "n_real_train", None)
        if n_real is not None:  # the baseline sees the real training texts only
            tr = data.train
            real = text.LabeledTexts(tr.texts[:n_real], tr.labels[:n_real])
            data = text.TextData(real, data.valid, data.test, data.label_names, data.source)
        return tfidf_logreg(data)


class ForecastTask(Task):
    """One-step-ahead forecasting from a window of the last ``cfg.window`` values."""

    metric = "rmse"
    higher_is_better = False
    kind = "forecast"

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.fc = cfg.task_spec.load(cfg)
        v = torch.tensor(self.fc.values, dtype=torch.float32)
        self.values, w, s = v, cfg.window, self.fc.test_start
        if s - w < 20:
            raise DataError(
                f"the training part is too short for --window {w}",
                self.fc.source,
                "use a smaller --window",
            )
        n_valid = max(5, (s - w) // 10)
        self.targets = {
            "train": list(range(w, s - n_valid)),
            "valid": list(range(s - n_valid, s)),
            "test": list(range(s, self.fc.test_end)),
        }
        self.labels: list[str] = []

    def train_lengths(self) -> list[int]:
        return [self.cfg.window] * len(self.targets["train"])

    def build_model(self) -> Forecaster:
        c = self.cfg
        self.model_kwargs = dict(
            hidden_size=c.hidden_size,
            num_layers=c.layers,
            dropout=c.dropout,
            kind=c.model,
            backend=c.backend,
        )
        model = Forecaster(**self.model_kwargs)
        train_part = self.values[: self.fc.test_start]
        model.mean.fill_(float(train_part.mean()))
        model.std.fill_(float(train_part.std()))
        return model

    def _windows(self, split: str, idx: list[int]):
        t = torch.tensor([self.targets[split][i] for i in idx])
        offs = torch.arange(-self.cfg.window, 0)
        x, y = self.values[t[:, None] + offs[None, :]], self.values[t]
        return x.to(self.device), y.to(self.device)

    def batch_loss(self, net, idx: list[int], split: str = "train"):
        x, y = self._windows(split, idx)
        scale = float(self.values[: self.fc.test_start].std())
        return F.mse_loss(net(x) / scale, y / scale, reduction="sum"), len(idx)

    def probe(self, model) -> torch.Tensor:
        x, _ = self._windows("train", list(range(min(16, len(self.targets["train"])))))
        return ((x - model.mean) / model.std).unsqueeze(-1)

    @torch.no_grad()
    def evaluate(self, model, split: str) -> dict:
        model.eval()
        x, y = self._windows(split, list(range(len(self.targets[split]))))
        pred = model(x)
        model.train()
        return {
            "rmse": float(torch.sqrt(((pred - y) ** 2).mean())),
            "mae": float((pred - y).abs().mean()),
        }

    def baseline(self) -> dict:
        from lstmkit.train.baselines import ar_forecast_rmse

        return ar_forecast_rmse(self.fc.values, self.fc.test_start, self.fc.test_end, lags=9)


class LMTask(Task):
    """Character language model over contiguous chunks of ``bptt + 1`` characters."""

    metric = "perplexity"
    higher_is_better = False
    kind = "lm"

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.corpus = cfg.task_spec.load(cfg)
        self.vocab = CharVocab.build(self.corpus.train, min_freq=cfg.min_freq)
        self.ids = {
            name: torch.tensor(self.vocab.encode(getattr(self.corpus, name)), dtype=torch.long)
            for name in ("train", "valid", "test")
        }
        self.labels: list[str] = []

    def _n_chunks(self, split: str) -> int:
        return max(0, (len(self.ids[split]) - 1) // self.cfg.bptt)

    def train_lengths(self) -> list[int]:
        return [self.cfg.bptt] * self._n_chunks("train")

    def build_model(self) -> CharLM:
        c = self.cfg
        self.model_kwargs = dict(
            vocab_size=len(self.vocab),
            embed_size=c.embed_size,
            hidden_size=c.hidden_size,
            num_layers=c.layers,
            dropout=c.dropout,
            kind=c.model,
            backend=c.backend,
        )
        return CharLM(**self.model_kwargs)

    def _chunks(self, split: str, idx: list[int]) -> torch.Tensor:
        L = self.cfg.bptt
        starts = torch.tensor(idx)[:, None] * L + torch.arange(L + 1)[None, :]
        return self.ids[split][starts].to(self.device)

    def batch_loss(self, net, idx: list[int], split: str = "train"):
        chunk = self._chunks(split, idx)
        logits, _ = net(chunk[:, :-1])
        target = chunk[:, 1:]
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"
        ), target.numel()

    def probe(self, model) -> torch.Tensor:
        return model.embed(self._chunks("train", list(range(min(8, self._n_chunks("train"))))))

    @torch.no_grad()
    def evaluate(self, model, split: str) -> dict:
        model.eval()
        n = self._n_chunks(split)
        total, count = 0.0, 0
        for lo in range(0, n, 64):
            loss, k = self.batch_loss(model, list(range(lo, min(n, lo + 64))), split)
            total, count = total + float(loss), count + k
        model.train()
        nll = total / max(count, 1)
        return {
            "loss": nll,
            "perplexity": math.exp(min(nll, 50.0)),
            "bits_per_char": nll / math.log(2),
        }

    def artifacts(self) -> dict[str, str]:
        return {"vocab.json": self.vocab.to_json(), "labels.json": "[]"}

    def baseline(self) -> dict:
        counts = torch.bincount(self.ids["train"], minlength=len(self.vocab)).double() + 1.0
        logp = torch.log(counts / counts.sum())
        nll = -float(logp[self.ids["test"]].mean())
        return {"unigram_test_perplexity": math.exp(nll)}


# TaskSpec.family -> its adapter
FAMILIES: dict[str, type[Task]] = {"classify": ClassifyTask, "forecast": ForecastTask, "lm": LMTask}


def make_task(cfg: TrainConfig) -> Task:
    """The adapter of ``cfg.task``'s family (:data:`lstmkit.train.task_specs.TASK_SPECS`)."""
    return FAMILIES[cfg.task_spec.family](cfg)


MODEL_CLASSES = {
    "SequenceClassifier": SequenceClassifier,
    "Forecaster": Forecaster,
    "CharLM": CharLM,
}


def build_model_for_run(cfg: TrainConfig, saved: dict, vocab, labels) -> torch.nn.Module:
    """Rebuild a run's (untrained) model from ``config.json`` without loading its data."""
    spec = saved.get("model") or {}
    cls = MODEL_CLASSES.get(spec.get("class", ""))
    if cls is None:
        raise DataError(
            f"unknown model class {spec.get('class')!r} in config.json",
            fix="retrain this run with this lstmkit version",
        )
    return cls(**spec["kwargs"])
