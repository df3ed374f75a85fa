"""Mimic application layer: the Qt GUI and the command line. Imports no torch."""
