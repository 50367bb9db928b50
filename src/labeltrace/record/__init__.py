"""Record training dynamics: :class:`Recorder` (update / end_epoch / state / merge of ranks) and
:class:`Dynamics`, the read-only per-sample view of what was recorded."""

from labeltrace.record.recorder import FIELDS, Dynamics, Recorder

__all__ = ["FIELDS", "Dynamics", "Recorder"]
