"""Test-only helpers. Product code never imports this package."""
