"""``python -m seeded_init``: see :mod:`seeded_init._cli`."""

from ._cli import main

raise SystemExit(main())
