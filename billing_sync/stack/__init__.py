"""`billing-sync run`: the whole stack as child processes, an optional demo, a clean stop.

Nothing here is part of the service: it only sets the environment the service reads,
starts the same commands an operator would, and talks to them over HTTP and the database.
"""
