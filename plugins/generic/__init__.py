"""The built-in generic platform plugin."""
