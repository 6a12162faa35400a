"""The transaction ledger: one model across OCPP versions, durable stores, its API."""
