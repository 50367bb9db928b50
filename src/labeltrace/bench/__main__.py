"""``python -m labeltrace.bench``: same as ``labeltrace bench``."""

from labeltrace.bench import main

raise SystemExit(main())
