"""`python -m refund_adapter ...`: the command line, for an environment without the `refund-adapter` script (a
venv that sees the core through its system site-packages)."""

from refund_adapter.cli import main

main(prog_name="refund-adapter")
