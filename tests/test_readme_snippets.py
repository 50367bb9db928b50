"""Every ```python snippet of README.md, run literally as a script in a fresh
directory — the torchrun one under ``torchrun --nproc_per_node 2`` (gloo), the others in this
process (``runpy``) — each must record every sample in every epoch and print its suspects."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labeltrace import Recorder

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "README.md"
BLOCK = re.compile(r"```python\n(# snippet: (\S+)\n.*?)```", re.DOTALL)
SNIPPETS = {name: code for code, name in BLOCK.findall(DOC.read_text())}


def test_the_doc_has_one_snippet_per_way_in():
    assert sorted(SNIPPETS) == ["hf-trainer", "lightning", "own-loop", "torchrun"]
    assert DOC.read_text().count("```python") == len(SNIPPETS)  # no unmarked (untested) block


def run(name: str, cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """Run a snippet as a script in ``cwd``; in this process (cheap), the torchrun one under torchrun."""
    script = cwd / f"snippet_{name.replace('-', '_')}.py"  # not lightning.py: it would shadow the package
    script.write_text(SNIPPETS[name])
    monkeypatch.chdir(cwd)
    if name != "torchrun":
        runpy.run_path(str(script), run_name="__main__")
        out = capsys.readouterr().out
    else:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "OMP_NUM_THREADS": "1"}  # fmt: skip
        # the README's code verbatim, then an exit that skips torch 2.13's gloo teardown, which aborts now and
        # then at interpreter exit ("terminate called without an active exception", a plain DDP script too)
        wrapper = cwd / "run_snippet.py"
        wrapper.write_text(f"import os, runpy, sys\nrunpy.run_path({str(script)!r}, run_name='__main__')\n"
                           "sys.stdout.flush()\nos._exit(0)\n")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(wrapper)]
        res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
        out = res.stdout
    assert "most suspect samples:" in out
    return out


@pytest.mark.parametrize("name", ["own-loop", "torchrun"])
def test_snippets_that_save_a_recorder(tmp_path, monkeypatch, capsys, name):
    run(name, tmp_path, monkeypatch, capsys)
    rec = Recorder.load(tmp_path / "recorder.npz")  # through the files in dynamics/
    assert (tmp_path / "dynamics" / "store.json").exists()
    dyn = rec.dynamics()
    assert dyn.num_epochs == 5
    np.testing.assert_array_equal(dyn.n_seen, np.full(dyn.num_samples, 5))  # once per epoch, padding too


@pytest.mark.parametrize("name", ["lightning", "hf-trainer"])
def test_framework_snippets(tmp_path, monkeypatch, capsys, name):
    pytest.importorskip("lightning" if name == "lightning" else "accelerate")
    out = run(name, tmp_path, monkeypatch, capsys)
    ids = [int(i) for i in re.findall(r"\d+", out.split("most suspect samples:")[1])]
    assert len(ids) == 10 and len(set(ids)) == 10 and all(0 <= i < 200 for i in ids)
