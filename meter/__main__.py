"""``python -m meter``: the same as the ``meter`` command."""

import sys

from meter.cli.main import main

sys.exit(main())
