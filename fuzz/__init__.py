"""Coverage-guided fuzzing of the three parsers that read client data (atheris, libFuzzer).

Each ``fuzz_*.py`` module has a pure ``test_one_input(data: bytes) -> None`` that raises only
when it finds a defect, and a ``main()`` that hands it to atheris. ``corpus/<target>/`` holds
the seed inputs kept in the repository (``make_seeds.py`` writes them). See docs/fuzzing.md.
"""
