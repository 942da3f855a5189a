"""Pure DataFrame -> DataFrame transformations: no reads or writes of tables here."""
