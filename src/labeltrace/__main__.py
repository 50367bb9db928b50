"""``python -m labeltrace``: the ``labeltrace`` command."""

from labeltrace.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
