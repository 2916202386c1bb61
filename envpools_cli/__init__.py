"""envpools: operate environment pools and agent rollouts, locally or on Synth."""

__version__ = "0.1.0"
