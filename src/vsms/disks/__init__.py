"""Virtual hard disks: create, inspect and compare through qemu-img; sparse-aware copies.

Errors from qemu-img and the OS are translated here into vsms.errors classes.
"""
