"""``python -m neuroflow``: the command line (see neuroflow.cli)."""

from .apps.cli import main

raise SystemExit(main())
