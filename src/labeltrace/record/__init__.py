"""Record training dynamics: :class:`Recorder` (update / end_epoch / state / merge of ranks) and
:class:`Dynamics`, the read-only per-sample view of what was recorded.

Modules: :mod:`~labeltrace.record.recorder` (:class:`Recorder`),
:mod:`~labeltrace.record.pending` (an unfinished epoch's updates, as ranks exchange them),
:mod:`~labeltrace.record.batch` (input checks and the recorded quantities),
:mod:`~labeltrace.record.storage` (per-epoch arrays in memory or in files),
:mod:`~labeltrace.record.state` (checkpoints), :mod:`~labeltrace.record.dynamics`,
:mod:`~labeltrace.record.recording` (what a recording protocol produced, and its folder on disk),
:mod:`~labeltrace.record.processes` (the warning for a plain Recorder under several processes).
"""

from labeltrace.record.batch import FIELDS
from labeltrace.record.dynamics import Dynamics
from labeltrace.record.pending import PendingUpdates
from labeltrace.record.recorder import Recorder

__all__ = ["FIELDS", "Dynamics", "PendingUpdates", "Recorder"]
