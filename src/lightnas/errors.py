"""The one exception type that reaches users as a one-line message."""


class LightnasError(Exception):
    """A problem with the user's input or environment.

    The command line prints ``lightnas: error: <message>`` and exits with
    status 2, without a traceback. Library callers catch it like any exception.
    """
