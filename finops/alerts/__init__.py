"""Alerts: rules as configuration (`rules`), their checks against the store (`checks`), state and
dedupe in the `alerts` table (`evaluate`), and delivery to webhook, Slack and Alertmanager
(`channels`). `AlertSettings` (in `config`) holds all of it.
"""
