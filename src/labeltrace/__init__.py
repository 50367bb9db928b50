"""labeltrace: find mislabeled images from training dynamics and get them fixed."""

from typing import TYPE_CHECKING

from labeltrace._lazy import exports
from labeltrace.record import Dynamics, Recorder

if TYPE_CHECKING:
    from labeltrace.data.duplicates import find_duplicates as find_duplicates
    from labeltrace.decide.own_run import find_suspects as find_suspects
    from labeltrace.own_training import write_run as write_run

__version__ = "0.1.0"

# find_suspects and write_run are imported on first use (the detector table pulls in scikit-learn), listed by dir()
_all, __getattr__, __dir__ = exports(__name__, {"find_suspects": "decide.own_run", "write_run": "own_training",
                                                "find_duplicates": "data.duplicates"})
__all__ = ["Dynamics", "Recorder", "__version__", *_all]
