"""Confidant: private chat with your own documents, entirely on this machine."""

__version__ = "0.1.0"
