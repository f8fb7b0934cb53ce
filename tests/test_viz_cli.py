"""``lstmkit diagram / explain / report``: a bad --output or option is one clear message, exit 2,
found before any work is done."""

from __future__ import annotations

import os

import pytest

from lstmkit.cli import main
from lstmkit.viz.explain import explain
from test_viz_fakes import FakeRun


@pytest.fixture()
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


@pytest.mark.parametrize("command", [["diagram", "lstm"], ["explain", "/nonexistent", "好"],
                                     ["report", "/nonexistent"]])  # fmt: skip
def test_output_under_a_file_or_onto_a_directory(command, a_file, tmp_path, capsys):
    name = "x.html" if command[0] == "report" else "x.png"
    assert main([*command, "-o", str(a_file / name)]) == 2
    err = capsys.readouterr().err
    assert f"{a_file} is a file, not a directory" in err and "Traceback" not in err
    assert main([*command, "-o", str(tmp_path)]) == 2
    assert "is a directory; give a file name" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_output_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["diagram", "lstm", "-o", str(locked / "x.svg")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_a_write_that_fails_is_a_clear_error(monkeypatch, tmp_path, capsys):
    from lstmkit.viz import diagram

    def fail(*_args, **_kw):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.svg"))

    monkeypatch.setattr(diagram, "draw_cell", fail)
    assert main(["diagram", "lstm", "-o", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'x.svg'}: Permission denied" in err


def test_bad_explain_options(capsys):
    assert main(["explain", "/nonexistent", "好", "-o", "x.pdf"]) == 2
    assert "unsupported output format 'pdf'" in capsys.readouterr().err
    assert main(["explain", "/nonexistent", "好", "--top-k", "0"]) == 2
    assert "--top-k must be at least 1" in capsys.readouterr().err
    assert main(["report", "/nonexistent", "-o", "r.txt"]) == 2
    assert "must end in .html" in capsys.readouterr().err


def test_layer_and_direction_out_of_range():
    run = FakeRun("好坏")
    with pytest.raises(ValueError, match=r"--layer 2: the model has 1 layer\(s\)"):
        explain(run, "好坏", layer=2)
    with pytest.raises(ValueError, match=r"--direction 1: the model has one direction"):
        explain(run, "好坏", direction=1)


def test_damaged_metrics_log_names_file_and_line(tmp_path):
    from lstmkit.data.errors import DataError
    from lstmkit.viz.runs import read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n\n{"epoch": 2, "tra\n')
    with pytest.raises(DataError, match="line 3 of metrics.jsonl is not valid JSON") as e:
        read_metrics(tmp_path)
    assert str(tmp_path / "metrics.jsonl") in str(e.value)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2 of metrics.jsonl is not a JSON object"):
        read_metrics(tmp_path)
