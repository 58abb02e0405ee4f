"""The one exception type for mistakes in what the user asked for (a bad config value, a misspelt key, a workdir
that cannot be written, ...). The `mobilejax` command prints its message as one line and exits with status 2;
anything else is a bug and keeps its traceback."""


class UsageError(ValueError):
    """A user error: the message names the value and what is allowed."""


class WorkdirConflictError(UsageError):
    """The workdir holds a run that this command must not mix with (another model, changed settings)."""


class TrainingStopped(Exception):
    """Training stopped on request (SIGINT/SIGTERM) after saving a checkpoint; `exit_code` is 130 or 143."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
