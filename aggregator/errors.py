"""One exception root. Each error knows how to tell the user and its exit code."""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every error the CLI reports as a message instead of a traceback."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(AggregatorError):
    """feeds.yaml is unreadable or invalid. Names the file, line and key."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        key: str | None = None,
        more: tuple[str, ...] = (),
    ) -> None:
        where = path if line is None else f"{path}:{line}"
        what = f"{key}: " if key else ""
        super().__init__(f"{where}: {what}{message}")
        self.problem = message  # without the file, line and key
        self.path = path
        self.line = line
        self.key = key
        self.more = more  # further problems of the same file, each "file:line: key: ..."

    def __str__(self) -> str:
        return "\n".join((super().__str__(), *self.more))


class FetchError(AggregatorError):
    """A source could not be fetched. Stored per source; never aborts a run."""

    def __init__(self, message: str, *, permanent: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class ParseError(AggregatorError):
    """A fetched document is not a feed or article we can read."""


class StoreError(AggregatorError):
    """The database cannot be opened or written."""


class DeliveryError(AggregatorError):
    """A digest could not be delivered."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class LockedError(AggregatorError):
    """Another aggregator process holds the lock."""

    exit_code = 3
