"""One helper that warns at the caller's line: :func:`warn_caller`, the default of every ``warn=`` /
``report=`` callable a function of the library takes (the CLI passes its own, which prints)."""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn_caller"]

_PACKAGE = os.path.dirname(os.path.realpath(__file__)) + os.sep


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` pointing at the first line outside labeltrace that led
    here: a fixed ``stacklevel`` points into the library when the warning comes from a nested call, a
    callback or a wrapper such as :func:`~labeltrace.run_claim.sharing` (Python 3.12's
    ``skip_file_prefixes``, on 3.11)."""
    frame = sys._getframe(1)
    level = 2  # warnings.warn's 1 is this function's line, 2 its caller's
    while frame.f_back is not None and os.path.realpath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
