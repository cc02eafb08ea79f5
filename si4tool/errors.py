"""Errors a user can cause, reported as one sentence with exit code 2."""


class UserError(Exception):
    """A problem with the user's input (file, option, model): exit code 2, no traceback."""

    exit_code = 2


class ValidationFailed(Exception):
    """The generated code disagrees with the reference, or accuracy dropped: exit code 1."""

    exit_code = 1
