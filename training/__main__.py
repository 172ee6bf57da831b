"""`python -m training`: train, report and export (see training/train.py)."""

from training.train import main

raise SystemExit(main())
