"""Allocation agents (PPO, SAC — stable-baselines3) on a weekly portfolio of the most liquid
names: `env` (the environment), `train` (training, held-out evaluation, the gate)."""
