"""The relabel settings no chosen rule reads: one check for ``labeltrace queue`` / ``simulate`` and
their functions (:func:`~labeltrace.relabel.queue.write_queue`,
:func:`~labeltrace.relabel.experiment.run_simulation`).

``queue --method cross_entropy --gamma 0.5`` or ``simulate --selectors random,oracle --epochs 5``
ran with the setting unread and not a word of it, and the queue file or ``simulation.json``
recorded it as if it had counted. Which rule reads what is the registry's word
(:attr:`Priority.settings <labeltrace.relabel.priority.Priority.settings>`,
:func:`~labeltrace.relabel.priority.needing_model`). The command line refuses a setting it names
(at its default too); a function, one given a value other than its default (as a scan's
:mod:`labeltrace.scan_unread`). Each message spells the settings as the caller knows them:
``--gamma`` on the command line, ``gamma`` in Python (``cli``).
"""

from __future__ import annotations

from collections.abc import Sequence

from labeltrace.relabel import priority as prio

__all__ = ["check_active", "refuse_unread", "spelled"]


def spelled(name: str, value: object = None, *, cli: bool) -> str:
    """``--active-every`` / ``--method random`` on the command line, ``active_every`` /
    ``method='random'`` in Python (a value given as text is written as it is)."""
    if cli:
        flag = "--" + name.replace("_", "-")
        return flag if value is None else f"{flag} {value}"
    return name if value is None else f"{name}={value!r}"


def check_active(active_method: str, active_every: int | None, *, cli: bool) -> None:
    """Refuse a refresh method without the refresh (``--active-method propagation`` without
    ``--active-every`` ran a static model, and recorded ``head``)."""
    if active_method != "head" and active_every is None:
        every = spelled("active_every", cli=cli)
        raise ValueError(f"{spelled('active_method', active_method, cli=cli)} says how {every} M refreshes the "
                         f"ranking every M relabels; give {every} (without it the model is static)")  # fmt: skip


def refuse_unread(
    rules: Sequence[str],
    *,
    cli: bool,
    gamma: bool = False,
    seed: bool = False,
    repeats: bool = False,
    model: Sequence[str] = (),
    budget: bool | None = None,
) -> None:
    """Refuse the settings given (``True``: named, or set off its default) that none of the
    registry ``rules`` reads: ``gamma`` (read by the rules whose settings hold it); for a queue
    (``budget`` not None: whether one was given, ``rules`` its one method) ``seed`` (read by
    ``random`` and the budget's estimate) and ``repeats`` (the estimate's); for a simulation the
    ``model`` settings given (names, in the caller's order: they set or feed the model), read
    where a rule needs a model. An unknown rule is left to the caller's own error."""
    if any(r not in prio.available() for r in rules):
        return
    known = [prio.get(r) for r in rules]
    queue = budget is not None
    method = spelled("method", rules[0], cli=cli) if queue else ""

    def which(what: str) -> str:
        return (f"{method} does not read {what}" if queue
                else f"none of the selectors {', '.join(rules)} reads {what}")  # fmt: skip

    if gamma and not any("gamma" in r.settings for r in known):
        readers = [r for r in prio.available() if "gamma" in prio.get(r).settings]
        raise ValueError(f"{spelled('gamma', cli=cli)} is the ambiguity threshold of {' and '.join(readers)}; "
                         f"{which('it')} (leave it out)")  # fmt: skip
    if queue:
        given = spelled("budget", cli=cli)
        if seed and "seed" not in known[0].settings and not budget:
            raise ValueError(f"{spelled('seed', cli=cli)} seeds {spelled('method', 'random', cli=cli)} and the {given} "
                             f"estimate's simulated reviews; {method} without {given} reads none (leave it out)")  # fmt: skip
        if repeats and not budget:
            raise ValueError(f"{spelled('repeats', cli=cli)} is the number of simulated campaigns of the {given} "
                             f"estimate; without {given} there is none (leave it out)")  # fmt: skip
        return
    if model and not prio.needing_model(rules):
        flags = ", ".join(spelled(n, cli=cli) for n in model)
        raise ValueError(f"{flags} set or feed the model behind the selectors that read one; "
                         f"{which('a model')} (leave {'it' if len(model) == 1 else 'them'} out)")  # fmt: skip
