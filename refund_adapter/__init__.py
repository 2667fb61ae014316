"""refund-adapter: Alipay no-password batch refunds for e-commerce platforms.

The package root re-exports the plugin API (`refund_adapter.plugin_api`), so `from refund_adapter import hookimpl`
works; everything else in the core is private to it.
"""

from .plugin_api import *  # noqa: F403
from .plugin_api import __all__ as __all__
