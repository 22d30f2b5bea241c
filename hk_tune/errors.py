"""The one error type users see for bad input.

It names the file or section, the key and what is allowed.
"""


class ConfigError(ValueError):
    """A configuration value, file or dataset that hk_tune refuses before spending any compute."""
