"""`python -m client ...` is `ae-client ...`."""

import sys

from client.cli import main

sys.exit(main())
