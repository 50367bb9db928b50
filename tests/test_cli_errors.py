"""The command line as a user meets it when something goes wrong: one line, naming the flag, no
traceback (a review of the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runfactory import make_run

from labeltrace import rundir
from labeltrace.cli import main
from labeltrace.scan_settings import ScanConfig, check


def test_ctrl_c_is_one_line_and_says_how_to_resume(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:  # fmt: skip
    """Ctrl-C during a scan printed some 25 traceback frames and nothing on resuming."""
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("labeltrace.cli._cmd_scan", interrupted)
    assert main(["scan", "--example", "digits", "--out", "x"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted: the same command resumes the scan from its last finished epoch"
    monkeypatch.setattr("labeltrace.cli._cmd_report", interrupted)
    assert main(["report", "x"]) == 130 and capsys.readouterr().err.strip() == "interrupted"


def test_an_unfinished_scan_is_not_called_a_foreign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "R"
    rundir.claim(out, {"a": 1})  # a scan stopped before its end: its fingerprint alone
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a scan that has not finished (run.json is written at its end): run the scan's command " \
        "again to resume it" in err
    # it offered '--force to start over', which resumes a scan of the same configuration (an audit's finding)
    assert "(with --force too: it replaces a scan of another configuration, and resumes this one's), or scan " \
        "into another --out to start over" in err
    assert rundir.claim(out, {"a": 1}, force=True) == "resume"  # what the message now says --force does
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a labeltrace run directory (run.json missing)" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["report", "R", "--top", "-3"], "argument --top: expected a whole number >= 0, got -3"),
    (["queue", "R", "--top", "x"], "argument --top: expected a whole number >= 0, got 'x'"),
    (["review", "R", "--port", "70000"], "argument --port: a port lies in 0-65535 (0: a free one), got 70000"),
    (["review", "R", "--port", "-1"], "argument --port: a port lies in 0-65535 (0: a free one), got -1"),
])  # fmt: skip
def test_bad_numbers_are_refused_by_their_flag(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(("change", "message"), [
    ({"weight_decay": -1.0}, "--weight-decay must be a finite number >= 0, got -1.0"),
    ({"weight_decay": float("nan")}, "--weight-decay must be a finite number >= 0, got nan"),
    ({"workers": -1}, "--workers must be >= 0, got -1"),
    # from Python: "'<' not supported between instances of 'str' and 'int'", or folds=5.0 deep in the trainer
    ({"epochs": "10"}, r"--epochs \(ScanConfig.epochs\) must be a whole number or None, got '10' \(str\)"),
    ({"folds": 5.0}, r"--folds \(ScanConfig.folds\) must be a whole number, got 5.0 \(float\)"),
    ({"lr": "1e-3"}, r"--lr \(ScanConfig.lr\) must be a number or None, got '1e-3' \(str\)"),
    ({"early_stop": "yes"}, r"--early-stop \(ScanConfig.early_stop\) must be True or False, got 'yes'"),
])  # fmt: skip
def test_settings_torch_would_refuse_in_its_own_words_are_refused_by_their_flag(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check(ScanConfig(**change), "small-cnn", 100)


def test_review_without_its_extra_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    assert main(["review", str(rd)]) == 2
    assert "pip install 'labeltrace[review]'" in capsys.readouterr().err


def test_python_dash_m_labeltrace_runs_the_command() -> None:
    r = subprocess.run([sys.executable, "-m", "labeltrace", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("labeltrace ")


def test_help_does_not_import_the_heavy_libraries() -> None:
    """`labeltrace --help` took ~5.5 s: building the parser imported torch, scikit-learn and scipy.stats
    (the detector table's GMM cuts, the bench's device check, the relabel rules), and every export
    scikit-learn (the report's metrics). They are imported where used now; asserted on the modules
    loaded, not on a clock."""
    code = ("import sys\nfrom labeltrace.cli import build_parser\nimport labeltrace.export, labeltrace.report\n"
            "for c in ('scan', 'score', 'report', 'export', 'bench', 'queue', 'simulate', 'review'):\n"
            "    try:\n        build_parser().parse_args([c, '--help'])\n"
            "    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'scipy.stats', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_bad_setting_is_refused_before_the_data_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`--lr 0` on a folder of 100k images was refused after the whole folder had been read."""
    def read(args: object) -> None:
        raise AssertionError("the data was read before the settings were checked")

    monkeypatch.setattr("labeltrace.cli._load_dataset", read)
    for flags, words in ((["--lr", "0"], "--lr must be a finite number > 0, got 0.0"), (["--folds", "1"], "--folds must be >= 2"),
                         (["--model", "small-cnn", "--finetune"], "--finetune applies to effnet-lite0: give --model effnet-lite0, not small-cnn"),
                         (["--finetune"], "--finetune applies to effnet-lite0: give --model effnet-lite0 (--model auto "
                                          "chooses"),  # before auto's probe, which might pick the CNN
                         (["--model", "effnet-lite0", "--resolution", "7000"], "--resolution 7000 makes 49,000,000-pixel inputs"),
                         (["--detector", "sei", "--early-stop"], "--early-stop stops a cross-fitted recording"),
                         (["--truth-column", "t"], "error: --truth-column needs a manifest")):  # a folder: rc 1 after reading it
        assert main(["scan", str(tmp_path / "images"), "--out", str(tmp_path / "run"), *flags]) == 2
        assert words in capsys.readouterr().err


def test_images_left_out_are_named_under_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`--on-bad-image skip --quiet` left an image out without a word on the terminal (only in run.json),
    while lesser warnings printed."""
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for k in range(3):
            Image.new("L", (8, 8), 40 * k).save(tmp_path / "d" / cls / f"{k}.png")
    (tmp_path / "d" / "a" / "bad.png").write_bytes(b"")

    def stop(*args: object, **kw: object) -> None:
        raise ValueError("stopped before training")

    monkeypatch.setattr("labeltrace.scan.scan", stop)
    argv = ["scan", str(tmp_path / "d"), "--out", str(tmp_path / "run"), "--on-bad-image", "skip", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "warning: skipped 1 unreadable image " in err and "a/bad.png: empty file (0 bytes; an interrupted copy?)" in err


def test_a_decisions_file_that_cannot_be_written_is_one_line_and_a_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """On a full disk `report` ended in sqlite3's traceback and a decision on the page in 'HTTP 500'."""
    import sqlite3

    from fastapi.testclient import TestClient

    from labeltrace.relabel.decisions import ReviewStore
    from labeltrace.review import create_app

    rd = make_run(tmp_path, n=12, k=3, seed=2)
    app = create_app(rd)
    full = sqlite3.OperationalError("database or disk is full")

    def fail(*args: object, **kw: object) -> None:
        raise full

    monkeypatch.setattr(ReviewStore, "add", fail)
    r = TestClient(app, base_url="http://127.0.0.1").post("/api/decision", json={"sample_id": 3, "decision": "unsure"})
    assert r.status_code == 503 and r.json()["detail"].startswith("sample 3: NOT saved, the server could not write")
    monkeypatch.setattr("labeltrace.report.html.read_report_data", fail)
    assert main(["report", str(rd)]) == 2
    err = capsys.readouterr().err
    assert "error: the review decisions file (reviews.db) could not be read or written: database or disk is full" in err
    assert "Traceback" not in err


def test_scan_from_python_names_a_wrong_argument(tmp_path: Path) -> None:
    """scan('imgs', ...) said '--folds must be in [2, N/2 = 2]' (N = len('imgs')); a dict for config
    "'dict' object has no attribute 'model'"."""
    from labeltrace.data import example
    from labeltrace.scan import scan

    with pytest.raises(TypeError, match=r"ds must be an ImageDataset \(labeltrace\.data\.from_folder\(path\).*got str"):
        scan("imgs", tmp_path / "run")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"config must be a ScanConfig .*got dict"):
        scan(example("digits"), tmp_path / "run", {"epochs": 2})  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()


def test_a_scan_started_with_python_dash_m_records_a_command_that_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m labeltrace scan ...` recorded `.../labeltrace/__main__.py scan ...` as the command that
    resumes it: pasted, 'Permission denied'."""
    import argparse

    import labeltrace.cli as cli

    seen: dict[str, list[str]] = {}
    real = argparse.ArgumentParser.parse_args

    def parse(self: argparse.ArgumentParser, *a: object, **kw: object) -> argparse.Namespace:
        ns = real(self, *a, **kw)  # type: ignore[arg-type]
        ns.func = lambda args: seen.setdefault("argv", args.argv) and 0
        return ns

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    monkeypatch.setattr(sys, "argv", ["/somewhere/labeltrace/__main__.py", "report", "R"])
    assert cli.main() == 0
    assert seen["argv"] == [sys.executable, "-m", "labeltrace", "report", "R"]


def test_a_reader_that_stops_early_is_no_error(tmp_path: Path) -> None:
    """`labeltrace queue ... | head` ended in 'error: [Errno 32] Broken pipe'."""
    rd = make_run(tmp_path, n=3000, k=3, seed=1)  # 3,000 lines: more than a pipe buffers, so the write must fail
    code = f"import sys; from labeltrace.cli import main; sys.exit(main(['queue', {str(rd)!r}, '--out', {str(tmp_path / 'q.csv')!r}, '--top', '3000']))"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.read(20)  # the first lines came
    p.stdout.close()  # the reader has what it wanted
    err = p.stderr.read().decode()
    assert p.wait() == 141 and "error" not in err and "Broken pipe" not in err, err


def test_a_broken_pipe_that_is_not_the_output_s_is_an_error(tmp_path: Path, monkeypatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A worker's or a FIFO's broken pipe ended the command quietly with 141 as if `| head` had."""
    from labeltrace import cli

    def broken(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe (a decoding worker)")

    monkeypatch.setattr(cli, "_cmd_score", broken)
    assert main(["score", str(tmp_path), "--method", "loss"]) == 2
    assert "error: [Errno 32] Broken pipe (a decoding worker)" in capsys.readouterr().err


def test_copies_that_share_a_group_are_not_said_to_back_each_other() -> None:
    from labeltrace.diagnostics import identical_text

    given, paths = np.array([0, 0, 1, 1, 0]), ["a", "b", "c", "d", "e"]
    both = identical_text([[0, 1], [2, 4]], given, ["x", "y"], paths)
    assert len(both) == 2 and "c (y) = e (x)" in both[0] and "a = b" in both[1]
    grouped = identical_text([[0, 1], [2, 4]], given, ["x", "y"], paths, ["p1", "p1", "p2", "p3", "p4"])
    assert len(grouped) == 1 and "different labels" in grouped[0]  # one patient's copies share a fold


@pytest.mark.parametrize(("args", "named"), [
    (["review", "RUN", "--export", ""], "--export"),  # served the review instead of exporting
    (["scan", "DATA", "--out", ""], "--out"),  # wrote the run into the current folder
    (["scan", "DATA", "--out", "R", "--labels", ""], "--labels"),  # scanned the folder's own labels
    (["scan", "DATA", "--out", "R", "--allow-root", ""], "--allow-root"),  # allowed the current folder
    (["scan", "", "--out", "R"], "DATA"),
])  # fmt: skip
def test_an_empty_value_is_refused_not_read_as_left_out(tmp_path: Path, capsys, args: list[str], named: str) -> None:
    """`"$UNSET_VAR"` in a script: an empty value was read as the option left out, or as '.'."""
    args = [str(tmp_path / a) if a in ("RUN", "DATA", "R") else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named} is empty: give it a value") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "named"), [
    (["scan", "--example", "digits", "--out", "R\udcff"], "--out"),  # trained, then failed writing its tables
    (["scan", "DATA\udce9", "--out", "R"], "DATA"),
    (["scan", "DATA", "--out", "R", "--allow-root", "ok", "--allow-root", "x\udcff"], "--allow-root"),
    (["queue", "RUN", "--out", "q\udcff.csv"], "--out"),
])  # fmt: skip
def test_a_value_that_is_not_utf8_is_refused_before_anything_runs(tmp_path: Path, capsys, args: list[str],
                                                                  named: str) -> None:  # fmt: skip
    """A name in another encoding, as Python reads it from the command line (a lone surrogate):
    `scan --out $'R\\xff'` trained for minutes, then pyarrow's 'surrogates not allowed'."""
    args = [str(tmp_path / a) if a.startswith(("RUN", "DATA", "R")) else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named} ") and "is not UTF-8 text" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_scan_api_refuses_a_run_directory_that_is_not_utf8(tmp_path: Path) -> None:
    from labeltrace import rundir

    with pytest.raises(ValueError, match="is not UTF-8 text"):
        with rundir.writing(tmp_path / "R\udcff"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_a_folder_goes_is_named_as_such(tmp_path: Path, capsys) -> None:
    """'[Errno 17] File exists: afile.txt' for `scan --out afile.txt`, `report --out afile.txt/x.html`."""
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    (tmp_path / "afile.txt").write_text("hi")
    for args in (["report", str(rd), "--out", str(tmp_path / "afile.txt" / "x.html")],
                 ["queue", str(rd), "--out", str(tmp_path / "afile.txt" / "q.csv")]):  # fmt: skip
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == f"error: {tmp_path / 'afile.txt'} is a file, where a folder is needed (to hold what this command writes)\n"


@pytest.mark.parametrize("text", ["[]", "null", '{"format": "labeltrace.run/1"}'])
@pytest.mark.parametrize("command", [["report"], ["queue"], ["score", "--method", "sei"], ["export", "--to", "csv"]])
def test_a_run_json_of_another_shape_is_named_damaged(tmp_path: Path, capsys, text: str, command: list[str]) -> None:
    """Valid JSON of another shape: AttributeError ('list' object has no attribute 'get') or
    KeyError 'data' tracebacks, and `score` went on (an audit's finding)."""
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    (rd / "run.json").write_text(text)
    out = ["--out", str(tmp_path / "o.csv")] if command[0] in ("queue", "export") else []
    assert main([command[0], str(rd), *command[1:], *out]) == 2
    assert "run.json is damaged: not a run's description" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--max-pixels", "5"], ["--on-bad-image", "skip"], ["--allow-root", "/tmp"],
                                   ["--no-missing-markers"]])  # fmt: skip
def test_image_file_settings_beside_arrays_are_refused(tmp_path: Path, capsys, flags: list[str]) -> None:
    """Accepted and never read beside an .npz or --example: a 5-pixel limit let 256-pixel arrays through."""
    npz = tmp_path / "m.npz"
    np.savez(npz, train_images=np.zeros((20, 16, 16), np.uint8), train_labels=np.arange(20) % 2)
    for data in ([str(npz)], ["--example", "digits"]):
        assert main(["scan", *data, "--out", str(tmp_path / "R"), *flags]) == 2
        err = capsys.readouterr().err
        assert f"{' '.join(flags[:1]) if flags[0] != '--on-bad-image' else '--on-bad-image skip'} applies to image " \
               "files and label text; DATA here is an array" in err
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize(("flags", "said"), [
    (["--export", "EXPORT", "--live", "--port", "1"], "--port, --live set the review server; --export serves no page"),
    (["--export", "EXPORT", "--features", "f.npy"], "--features sets the review server; --export serves no page"),
    (["--live-every", "3"], "--live-every / --live-method set the live re-ranking: give --live too"),
])  # fmt: skip
def test_review_options_the_command_does_not_read_are_refused(tmp_path: Path, capsys, flags: list[str],
                                                              said: str) -> None:  # fmt: skip
    """`review RUN --export FILE --live --port 1 --features x.npy` exported (the rest ignored);
    `--live-every` without `--live` served without re-ranking (a CLI audit's findings)."""
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    flags = [str(tmp_path / "o.csv") if f == "EXPORT" else f for f in flags]
    assert main(["review", str(rd), *flags]) == 2
    assert said in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
