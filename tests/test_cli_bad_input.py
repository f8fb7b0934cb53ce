"""Bad input met as a user would: each case is a clear message naming the file or option and
what to do, exit status 2 and no traceback, or a stated behaviour (issue 14)."""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest

from lstmkit.cli import main

TINY = ["--max-train", "200", "--epochs", "1", "--hidden-size", "8", "--embed-size", "8",
        "--no-baseline", "--no-progress", "--threads", "1", "--max-len", "40",
        "--contrast-examples", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, "--epochs", "2", "--out-dir", str(out), "--name", "r"]) == 0
    return str(out / "r")


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if the sentiment data is read (checks must come first)."""
    from lstmkit.data import text

    def refuse(*a, **k):
        raise AssertionError("the data was loaded before the check")

    monkeypatch.setattr(text, "load_sentiment", refuse)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--data", "reviews.csv"], "--task text"),
        (["--task", "sunspots", "--data", "x.csv"], "no effect on task 'sunspots'"),
        (["--task", "lm", "--window", "5"], "--window has no effect"),
        (["--task", "sunspots", "--max-train", "5"], "--max-train has no effect"),
        (["--stall-steps", "-5"], "--stall-steps must be 0"),
        (["--max-train", "-5"], "--max-train must be at least 1"),
        (["--clip", "-1"], "--clip must be 0"),
        (["--patience", "-1"], "--patience must be 0"),
        (["--resume", "RUN", "--epochs", "5", "--lr", "0.1"], "takes no training options"),
        (["--out-dir", "FILE"], "is a file, not a directory"),
        (["--out-dir", "FILE/below"], "is a file, not a directory"),
        (["--out-dir", "/sys/kernel/lstmkit"], "inside /sys"),
    ],
)
def test_train_option_errors(argv, needle, capsys, tmp_path, no_data, run_dir):
    (tmp_path / "f").write_text("x")
    argv = [
        a.replace("FILE", str(tmp_path / "f")).replace("RUN", run_dir) if a else a for a in argv
    ]
    assert main(["train", *argv]) == 2
    err = _err(capsys)
    assert needle in err and "error:" in err
    if "--resume" in argv:
        assert "--epochs" in err and "--lr" in err


def test_patience_0_means_off(tmp_path, capsys):
    argv = [*TINY, "--epochs", "3", "--patience", "0", "--out-dir", str(tmp_path), "--json"]
    assert main(["train", *argv]) == 0
    assert json.loads(capsys.readouterr().out)["epochs_run"] == 3


def _write_csv(path, rows) -> str:
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows), "utf-8")
    return str(path)


def test_label_only_in_valid_or_test_is_refused(tmp_path, capsys):
    import random

    pairs = [(f"很好{i}", "pos") for i in range(30)] + [(f"太差{i}", "neg") for i in range(30)]
    for k in range(len(pairs) + 1):  # where the one `neutral` row lands outside training
        rows = pairs[:k] + [("一般般", "neutral")] + pairs[k:]
        shuffled = list(rows)
        random.Random(0).shuffle(shuffled)
        if ("一般般", "neutral") in shuffled[: 2 * round(len(rows) * 0.1)]:
            break
    data = _write_csv(tmp_path / "d.csv", rows)
    assert main(["train", "--task", "text", "--data", data, "--out-dir", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "'neutral'" in err and "training split" in err and "d.csv" in err


def test_unclosed_quote_is_reported_where_it_opens(tmp_path, capsys):
    rows = [(f"很好{i}", "pos") for i in range(9)] + [('"坏', "neg")]
    rows += [(f"太差{i}", "neg") for i in range(10)]
    data = _write_csv(tmp_path / "q.csv", rows)
    assert main(["train", "--task", "text", "--data", data]) == 2
    err = _err(capsys)
    assert "line 11" in err and "never closed" in err


def test_blank_cell_in_a_forecast_csv_is_an_error(tmp_path, capsys):
    p = tmp_path / "f.csv"
    p.write_text("v\n" + "".join(f"{i}\n" for i in range(40)) + "\n" + "1\n" * 10 + "\n\n")
    assert main(["train", "--task", "forecast", "--data", str(p)]) == 2
    assert "line 42" in _err(capsys)
    p.write_text("t,v\n" + "".join(f"{i},{i}\n" for i in range(40)) + "40,\n")
    assert main(["train", "--task", "forecast", "--data", str(p)]) == 2
    err = _err(capsys)
    assert "line 42" in err and "empty cell" in err


def _damaged(run_dir, tmp_path, name, damage) -> str:
    copy = tmp_path / name
    shutil.copytree(run_dir, copy)
    damage(copy)
    return str(copy)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("cmd", ["predict", "evaluate", "explain", "report"])
def test_truncated_model_is_named(cmd, run_dir, tmp_path, capsys):
    bad = _damaged(run_dir, tmp_path, "m", lambda d: _truncate(d / "model.safetensors"))
    extra = {"predict": ["很好"], "explain": ["很好", "-o", str(tmp_path / "x.png")]}
    assert main([cmd, bad, *extra.get(cmd, [])]) == 2
    err = _err(capsys)
    assert "model.safetensors" in err and "damaged or truncated" in err and "retrain" in err


def test_damaged_summary_and_missing_vocab(run_dir, tmp_path, capsys):
    bad = _damaged(run_dir, tmp_path, "s", lambda d: (d / "summary.json").write_text('{"te'))
    assert main(["predict", bad, "很好"]) == 2
    assert "summary.json is damaged" in _err(capsys)
    bad = _damaged(run_dir, tmp_path, "v", lambda d: (d / "vocab.json").unlink())
    assert main(["predict", bad, "很好"]) == 2
    err = _err(capsys)
    assert "vocab.json is missing" in err and "works on text classifiers" not in err


@pytest.mark.parametrize("victim", ["state.json", "state-2.safetensors"])
def test_damaged_checkpoint_on_resume(victim, run_dir, tmp_path, capsys, no_data):
    def damage(d):
        (d / "summary.json").unlink()  # an interrupted run
        _truncate(d / "checkpoint" / victim)

    bad = _damaged(run_dir, tmp_path, "c", damage)
    assert main(["train", "--resume", bad]) == 2
    err = _err(capsys)
    assert victim in err and "--resume" in err and "checkpoint" in err


def test_predict_texts_that_look_like_options(run_dir, capsys):
    assert main(["predict", run_dir, "-_-差评", "很好", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["-_-差评", "很好"]
    assert main(["predict", run_dir, "--", "--json", "-x"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[2] for ln in lines] == ["--json", "-x"]


def test_logs_have_no_carriage_return_frames(tmp_path, capsys):
    argv = [a for a in TINY if a != "--no-progress"] + ["--out-dir", str(tmp_path)]
    assert main(["train", *argv, "--epochs", "2"]) == 0
    out = capsys.readouterr()
    assert "\r" not in out.err and "\r" not in out.out
    assert out.out.count("epoch ") >= 2


def test_ctrl_c_hint_names_the_run(tmp_path, capsys, monkeypatch):
    from lstmkit.train import tasks

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks.ClassifyTask, "batch_loss", interrupt)
    argv = [*TINY, "--out-dir", str(tmp_path), "--name", "cut"]
    assert main(["train", *argv]) == 130
    err = capsys.readouterr().err
    assert f"lstmkit train --resume {os.path.join(str(tmp_path), 'cut')}" in err
    assert "RUN_DIR" not in err


def test_empty_stdin_is_exit_2(run_dir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["predict", run_dir]) == 2
    assert "stdin was empty" in _err(capsys)
