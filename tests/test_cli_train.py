"""The `lstmkit train/evaluate/predict/generate` command line: help, output, user errors."""

from __future__ import annotations

import json

import pytest

from lstmkit.cli import main

TINY = [
    "--max-train",
    "200",
    "--epochs",
    "1",
    "--hidden-size",
    "8",
    "--embed-size",
    "8",
    "--no-baseline",
    "--no-progress",
    "--threads",
    "1",
    "--max-len",
    "40",
    "--contrast-examples",
    "0",
]


@pytest.mark.parametrize("cmd", ["train", "evaluate", "predict", "generate"])
def test_help_documents_every_option(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    lines = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("--")]
    assert lines, out
    if cmd == "train":
        for opt in (
            "--task",
            "--model",
            "--layers",
            "--hidden-size",
            "--bidirectional",
            "--dropout",
            "--lr",
            "--epochs",
            "--batch-size",
            "--clip",
            "--seed",
            "--backend",
            "--out-dir",
            "--resume",
        ):
            assert opt in out, opt


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, "--out-dir", str(out), "--name", "r"]) == 0
    return str(out / "r")


def test_train_prints_accuracy_and_dir(tmp_path, capsys):
    assert main(["train", *TINY, "--out-dir", str(tmp_path), "--name", "x", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["run_dir"] == str(tmp_path / "x") and 0 <= summary["test_accuracy"] <= 1


def test_predict_json_and_stdin(run_dir, capsys, monkeypatch):
    assert main(["predict", run_dir, "很好", "很差", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["很好", "很差"]
    assert all(r["label"] in ("neg", "pos") and 0.5 <= r["probability"] <= 1 for r in rows)
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("还不错\n\n太差\n"))
    assert main(["predict", run_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    # one output line per input line: the blank one gets a blank verdict
    assert len(lines) == 3 and lines[0].endswith("\t还不错") and lines[1] == "\t\t"
    monkeypatch.setattr("sys.stdin", io.StringIO("好\n\n"))
    assert main(["predict", run_dir, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows[1] == {"text": "", "label": None, "probability": None}
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["predict", run_dir]) == 2
    assert "stdin was empty" in capsys.readouterr().err


def test_evaluate_matches_summary(run_dir, capsys):
    assert main(["evaluate", run_dir, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    with open(f"{run_dir}/summary.json", encoding="utf-8") as f:
        assert m["accuracy"] == pytest.approx(json.load(f)["test_accuracy"])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--task", "text"], "needs --data"),
        (["train", "--task", "text", "--data", "/no/such.csv"], "data file not found"),
        (["predict", "/no/such/run", "x"], "run directory not found"),
        (["evaluate", "/tmp"], "not a run directory"),
        (["generate", "RUN"], None),
    ],
)
def test_user_errors_are_messages_not_tracebacks(argv, needle, capsys, run_dir):
    argv = [run_dir if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err
    assert needle is None or needle in err
    if argv[0] == "generate":
        assert "language-model run" in err


def test_bad_rows_and_empty_text(tmp_path, capsys, run_dir):
    p = tmp_path / "d.csv"
    p.write_text("text,label\n好,pos\n坏,neg,extra\n", encoding="utf-8")
    assert main(["train", "--task", "text", "--data", str(p)]) == 2
    assert "line 3" in capsys.readouterr().err
    assert main(["predict", run_dir, "  "]) == 2
    assert "empty text" in capsys.readouterr().err


def test_existing_run_dir_is_not_overwritten(run_dir, capsys):
    import os

    parent, name = os.path.split(run_dir)
    assert main(["train", *TINY, "--out-dir", parent, "--name", name]) == 2
    assert "already exists" in capsys.readouterr().err


def test_incomplete_run_is_not_taken_as_good(tmp_path, capsys, run_dir):
    import shutil

    half = tmp_path / "half"
    shutil.copytree(run_dir, half)
    (half / "summary.json").unlink()
    assert main(["predict", str(half), "好"]) == 2
    assert "not complete" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "很好", "很差"],
        ["很好", "--json", "很差"],
        ["很好", "很差", "--json"],
    ],
)
def test_predict_json_option_anywhere(run_dir, capsys, argv):
    assert main(["predict", run_dir, *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    rows = [json.loads(x) for x in lines]  # one JSON object per line
    assert [r["text"] for r in rows] == ["很好", "很差"]
    for r in rows:
        assert r["label"] in ("neg", "pos") and 0.5 <= r["probability"] <= 1


def test_predict_unknown_option_is_still_an_error(run_dir, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", run_dir, "很好", "--bogus"])
    assert e.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_backend_the_machine_cannot_run_fails_at_once(tmp_path, capsys, monkeypatch):
    import torch

    from lstmkit.data import text

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the interpreter would run it on CPU

    def no_data(*a, **k):  # the check must come before any data is read
        raise AssertionError("data was loaded before the backend check")

    monkeypatch.setattr(text, "load_sentiment", no_data)
    assert main(["train", "--backend", "triton", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err and "triton" in err and "CUDA" in err
    assert not list(tmp_path.iterdir())  # no half-made run directory
    assert main(["train", "--device", "cuda", "--out-dir", str(tmp_path)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
