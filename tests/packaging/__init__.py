"""Tests of the installers' layout and of what IT configures machine-wide."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
