"""Rollout: the canary state machine and judge (pure), its controller, shadow traffic."""
