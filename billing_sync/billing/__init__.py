"""Getting billing records to the billing system: the outbox, Standard Webhooks signing, delivery."""
