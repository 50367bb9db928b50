"""labeltrace: find mislabeled images from training dynamics and get them fixed."""

from labeltrace.record import Dynamics, Recorder

__all__ = ["Dynamics", "Recorder", "__version__"]
__version__ = "0.1.0"
