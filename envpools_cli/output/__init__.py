"""Everything that writes to stdout or stderr. Rich is imported only for terminals."""
