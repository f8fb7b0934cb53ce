"""User mistakes on the command line: one clear message, exit status 2, no traceback."""

import pytest

from lstmkit.cli import main

CASES = [
    (["explain", "/nonexistent/run", "很好"], "does not exist"),
    (["report", "/nonexistent/run"], "does not exist"),
    (["diagram", "lstm", "-o", "cell.txt"], ".svg or .png"),
    (["diagram", "lstm", "--dpi", "0"], "--dpi"),
    (["train", "--backend", "bogus"], "unknown backend"),
    (["train", "--device", "tpu"], "unknown device"),
    (["train", "--task", "sunspots", "--window", "0"], "--window"),
    (["train", "--task", "lm", "--bptt", "0"], "--bptt"),
    (["train", "--dropout", "-0.1"], "--dropout"),
    (["train", "--label-smoothing", "1"], "--label-smoothing"),
    (["train", "--average", "1"], "--average"),
    (["train", "--weight-decay", "nan"], "--weight-decay"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--time-budget", "-1"], "--time-budget"),
    (["train", "--threads", "0"], "--threads"),
    (["train", "--task", "lm", "--label-smoothing", "0.1"], "no effect on task 'lm'"),
    (["train", "--task", "sunspots", "--embed-dropout", "0.1"], "--embed-dropout"),
    (["train", "--task", "vowels", "--token-dropout", "0.1"], "--token-dropout"),
    (["train", "--task", "vowels", "--contrast-examples", "5"], "--contrast-examples"),
    (["generate", "/nonexistent/run", "--length", "-5"], "--length"),
    (["bench", "--backends", "bogus"], "--backends"),
    (["bench", "--points", "99"], "--points"),
    (["bench", "--grid", "/nonexistent/grid.json"], "not found"),
]


@pytest.mark.parametrize(
    "argv,message", CASES, ids=[" ".join(c[0][:2]) + f" {i}" for i, c in enumerate(CASES)]
)
def test_user_mistake_gives_message_and_status_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir()), "nothing half-written"
