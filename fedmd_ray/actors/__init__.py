"""Participants and the driver (plain classes), and their Ray wrappers."""
