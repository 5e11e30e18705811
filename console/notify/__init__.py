"""Notification: audit events to alerts (pure) and their delivery (Alertmanager, webhooks)."""
