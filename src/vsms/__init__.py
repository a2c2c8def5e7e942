"""vsms: a Hyper-V-compatible Virtual System Management Service for Linux."""

__version__ = "0.1.0"
