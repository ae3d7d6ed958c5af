"""A local Genesys Cloud org for the demo, the tests and the benchmarks (contract §2–§10).

Independent of the service: nothing here imports the ledger, the API or the database.
"""

from .clock import ManualClock, ScaledClock
from .media import media_length_ms
from .server import Sandbox

__all__ = ["ManualClock", "Sandbox", "ScaledClock", "media_length_ms"]
