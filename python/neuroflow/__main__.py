"""``python -m neuroflow``: the command line (see neuroflow.cli)."""

from .cli import main

raise SystemExit(main())
