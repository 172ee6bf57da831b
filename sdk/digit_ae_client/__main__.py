"""`python -m digit_ae_client ...` is `ae-client ...`."""

import sys

from digit_ae_client.cli import main

sys.exit(main())
