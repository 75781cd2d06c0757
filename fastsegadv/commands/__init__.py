"""The ``fastsegadv train`` and ``fastsegadv evaluate`` commands (argument parsing, config files)."""
