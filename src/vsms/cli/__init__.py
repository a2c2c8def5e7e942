"""The ``vsms`` command."""
