"""Exception types. Each message names what was expected and what was found."""

from __future__ import annotations


class HybridrecError(Exception):
    """Base class for errors the pipeline raises on purpose."""


class ConfigError(HybridrecError, ValueError):
    """The configuration file or an override is invalid."""


class SourceNotFoundError(HybridrecError, FileNotFoundError):
    """An input path does not exist or holds no readable files."""


class MissingColumnError(HybridrecError, ValueError):
    """An input lacks a required column."""

    def __init__(self, source: str, missing: list[str], present: list[str]) -> None:
        super().__init__(
            f"{source}: missing required column(s) {missing}; columns present: {present}"
        )
        self.source = source
        self.missing = missing
        self.present = present


class SchemaMismatchError(HybridrecError, ValueError):
    """A DataFrame does not match the contract of the table it is written to."""


class ReconciliationError(HybridrecError, RuntimeError):
    """Rows read do not equal rows kept plus rows quarantined."""


class TableNotFoundError(HybridrecError, FileNotFoundError):
    """A Delta table (or the partition a step needs) does not exist yet."""


class QualityGateError(HybridrecError, RuntimeError):
    """The nightly evaluation fell below the gate; the night was not published."""


class EvaluationError(HybridrecError, ValueError):
    """The holdout cannot be evaluated (for example no user has a positive test event)."""


class EmptyInputError(HybridrecError, ValueError):
    """An input file or folder was read but holds no rows."""


class InputHeaderError(HybridrecError, ValueError):
    """An input's header repeats a column, leaves one unnamed, or mis-spells one (case, spaces, BOM)."""


class QuarantineThresholdError(HybridrecError, ValueError):
    """Ingest would quarantine more of an input than guardrails allow; nothing was written."""


class GuardrailError(HybridrecError, RuntimeError):
    """The night's inputs or outputs moved beyond the guardrails since the last published night."""


class InputTypeError(HybridrecError, ValueError):
    """An input column has a type the pipeline cannot use as is (e.g. float ids)."""


class ConcurrentRunError(HybridrecError, RuntimeError):
    """Another run of the same run date committed to, or took over, what this run was writing."""


class EmbeddingError(HybridrecError, RuntimeError):
    """The embedding model failed on an item; nothing was published."""


class UnsafePathError(HybridrecError, ValueError):
    """A path to delete resolves outside the folder it must stay in."""


class VacuumRefusedError(HybridrecError, ValueError):
    """A vacuum was asked for with settings that could delete data still needed."""


class JvmDependencyError(HybridrecError, RuntimeError):
    """A Spark JVM package (Delta, s3a, hybridrec's own jar) is not on the classpath."""


class BlockListError(HybridrecError, ValueError):
    """A row of the per-user block list cannot be used: the night stops rather than ignore it."""
