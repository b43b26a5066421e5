"""Reports: curves, tables and figures made from run directories. Knows nothing of a particular family."""
