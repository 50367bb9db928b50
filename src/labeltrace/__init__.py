"""labeltrace: find mislabeled images from training dynamics and get them fixed."""

from typing import Any

from labeltrace.record import Dynamics, Recorder

__all__ = ["Dynamics", "Recorder", "__version__", "find_suspects"]


def __getattr__(name: str) -> Any:
    if name == "find_suspects":  # imported on first use: the detector table pulls in scikit-learn
        from labeltrace.decide.own_run import find_suspects

        return find_suspects
    raise AttributeError(f"module 'labeltrace' has no attribute {name!r}")


def __dir__() -> list[str]:  # tab completion shows find_suspects, imported on first use
    return sorted(set(globals()) | set(__all__))
__version__ = "0.1.0"
