"""The digit autoencoder's HTTP service. `create_app(settings)` builds it; `python -m service`
serves it. Importing this package touches neither disk nor device."""

from service.app import create_app
from service.settings import Settings

__all__ = ["Settings", "create_app"]
