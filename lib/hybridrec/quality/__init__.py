"""Offline quality, pure: holdout splits, metrics, the gate's verdict, the tuning grid, reports."""
