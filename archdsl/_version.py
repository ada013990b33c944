"""The package version: read by pyproject (hatch) and by every stage that stamps it into a model, without
importing the package root (which imports the driver)."""

__version__ = "0.1.0"
