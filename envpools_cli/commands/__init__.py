"""One thin module per command group: parse flags, call the client, hand to output."""
