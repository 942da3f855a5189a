"""All reads and writes of the lakehouse (Delta tables, the catalog, maintenance) and the storage it
lives on. Input files are read in hybridrec.sources."""
