"""Quota: per-minute and per-day limits (in one process or shared across processes), retry policy, key partitions."""
