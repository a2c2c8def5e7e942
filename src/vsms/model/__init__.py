"""Typed dataclasses that cross module borders. Imports neither pywbem nor libvirt."""
