"""WooCommerce platform plugin: refunds from order webhooks, results written back, lost events recovered."""
