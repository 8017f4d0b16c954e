"""Admission webhooks (upstream ray-operator/pkg/webhooks)."""
