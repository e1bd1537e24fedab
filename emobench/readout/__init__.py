"""Reading results: many reports merged into one table (merge), speed against accuracy (tradeoff)
and the write-up's claims checked against measured reports (claims). Torch-free."""
