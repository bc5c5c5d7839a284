"""The few errors tokenloop raises. Library code raises them; only the edges (the CLI, the web
app) turn them into a one-line message for the user."""


class TokenloopError(Exception):
    """Base class: `str(error)` is a one-line message that says what to do."""

    exit_code = 1


class UsageError(TokenloopError):
    """Bad input from the user: an option value, an empty prompt, a prompt too long."""

    exit_code = 2


class ModelError(TokenloopError):
    """The model can't be found, converted or loaded."""

    exit_code = 2


class ServerError(TokenloopError):
    """An OpenAI-compatible server could not be reached or answered something unusable."""

    exit_code = 1

    def __init__(self, message: str, step: int | None = None):
        if step is not None:
            message = f"{message} (at step {step})"
        super().__init__(message)
        self.step = step
