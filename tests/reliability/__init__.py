"""Reliability and scale: Redis Cluster, Sentinel failover, outages under load, a soak."""
