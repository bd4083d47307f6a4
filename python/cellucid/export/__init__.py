"""The export format: encoders, ``prepare`` and the tools that check and read exports."""
