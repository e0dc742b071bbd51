"""``python -m scripts.local_kafka ...``: the command line (``cli.py``)."""

import sys

from scripts.local_kafka.cli import main

sys.exit(main())
