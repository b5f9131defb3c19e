"""The package version, in a module that imports nothing, so that any layer can name it
without importing the package root (which would point an import arrow upwards)."""

__version__ = "0.1.0"
