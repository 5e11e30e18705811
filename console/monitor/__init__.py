"""Monitoring: the continuous checks that run after a release (`mrc watch`, `mrc alerts run`)."""
