"""The client side of the Genesys Cloud wire contract: auth, REST client, stream, payload schemas.

`GenesysClient` (client.py) is the REST client; `NotificationStream` (stream.py) the event
stream; `errors` the typed failures. `hosts` and `payloads` stay importable on their own.
"""
