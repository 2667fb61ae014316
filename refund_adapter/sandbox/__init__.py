"""A simulated Alipay: one ledger, one face per protocol, faults, an admin API (what users import)."""

from .mapi import (
    FAULTS_OFF,
    PROBLEM_TYPE,
    Faults,
    Notification,
    RunningSandbox,
    SandboxConfig,
    SandboxState,
    Trade,
    TradeSeed,
    config_from_files,
    create_sandbox_app,
    parse_trade_seeds,
    run_sandbox,
    serve_sandbox,
)

__all__ = [
    "FAULTS_OFF",
    "PROBLEM_TYPE",
    "Faults",
    "Notification",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxState",
    "Trade",
    "TradeSeed",
    "config_from_files",
    "create_sandbox_app",
    "parse_trade_seeds",
    "run_sandbox",
    "serve_sandbox",
]
