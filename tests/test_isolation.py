"""The suite's tests do not hand state on to one another (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


def test_a_test_that_sets_the_environment_or_torchs_switches_leaves_them_as_they_were(pytester: pytest.Pytester):
    # what a Lightning Trainer(deterministic=True) and its ddp_fork strategy did to the process
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makepyfile(
        """
        import os
        import torch

        def test_sets():
            os.environ["MASTER_PORT"] = "54697"
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
            os.environ["HOME"] = "elsewhere"
            torch.use_deterministic_algorithms(True)

        def test_finds_the_process_as_it_was(tmp_path):
            assert "MASTER_PORT" not in os.environ and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
            assert os.environ["HOME"] != "elsewhere"
            assert not torch.are_deterministic_algorithms_enabled()
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider").assert_outcomes(passed=2)
