"""``python -m tokenlog``: the same as the ``tokenlog`` command."""

import sys

from .cli import main

sys.exit(main())
