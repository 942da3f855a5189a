"""All reads and writes of tables and input files live in this package."""
