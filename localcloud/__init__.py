"""The local cloud: the moto AWS emulator plus what moto does not do.

Instances really boot their user-data in sandboxes, RDS instances are real PostgreSQL
servers, target health comes from real HTTP probes, load balancers really forward, and
resources take time to appear and to go away. See README.md beside this file.
"""
