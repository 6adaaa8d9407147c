"""The ``streetsense`` command-line tools."""
