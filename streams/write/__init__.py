"""The write side: commands in, events out, exactly once."""
