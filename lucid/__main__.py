"""``python -m lucid`` runs the ``lucid`` command."""
import sys

from .cli import main

sys.exit(main())
