"""Shopify platform plugin: refunds/create webhooks, payments-app refund sessions, results written back."""
