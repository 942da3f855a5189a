"""Turning item text into vectors (the model runtimes; the Spark UDF is transforms.embed)."""
