"""``python -m cueprobe`` runs the CLI."""

import sys

from cueprobe.cli import main

sys.exit(main())
