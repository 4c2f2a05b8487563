"""User-facing errors: shown as one line on stderr, exit code 2, nothing half-written."""


class UserError(Exception):
    """Bad input from the user (a value, a file, an unreachable server).

    The message must name what was received and what is allowed, on one line.
    """

    exit_code = 2


class DeviceError(UserError, RuntimeError):
    """The requested backend or device is not available here (e.g. --device gpu, no GPU)."""


class ConfigError(UserError, ValueError):
    """A value that is not allowed (unknown backend, device, ...), named with what is allowed."""
