"""Everything the terminal and Markdown show, and the only place rich and matplotlib are
imported: tables per wing (compare, gate, readout), number formats, progress, plots."""
