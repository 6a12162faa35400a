"""`csms simulate`: a fleet of simulated charging stations speaking OCPP 1.6, 2.0.1 or 2.1."""
