"""The SDK's version: one literal, read by the build (pyproject.toml) and sent in User-Agent."""

__version__ = "0.1.0"
