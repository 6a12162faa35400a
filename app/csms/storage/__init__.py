"""Durable storage of the embedded central system (CSMS_DATA_DIR)."""
