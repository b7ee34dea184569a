"""The package version, defined once (the package, the CLI and the OpenTelemetry scope read it)."""

__version__ = "0.1.0"
