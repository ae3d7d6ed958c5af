"""The numbers `billing-sync run` prints, read from the ledger database (the whole database)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..db import Database
from ..models import BillingRecord, Discrepancy, OutboxMessage, Playback, PlaybackEvent


@dataclass(frozen=True, slots=True)
class Summary:
    ledger_events: int
    playbacks: int
    charges: int
    adjustments: int
    deliveries: int
    healed: int

    def lines(self) -> list[str]:
        return [f"ledger events: {self.ledger_events}", f"playbacks: {self.playbacks}",
                f"charges: {self.charges}", f"adjustments: {self.adjustments}",
                f"deliveries: {self.deliveries}", f"discrepancies healed: {self.healed}"]


def read_summary(db: Database, run_id: int) -> Summary:
    """Totals of the ledger, billing and delivery; what reconciliation run `run_id` healed."""
    count = func.count()
    with db.read() as session:
        def scalar(query) -> int:
            return int(session.scalar(query) or 0)

        return Summary(
            ledger_events=scalar(select(count).select_from(PlaybackEvent)),
            playbacks=scalar(select(count).select_from(Playback)),
            charges=scalar(select(count).select_from(BillingRecord).where(BillingRecord.kind == "charge")),
            adjustments=scalar(select(count).select_from(BillingRecord).where(BillingRecord.kind == "adjustment")),
            deliveries=scalar(select(count).select_from(OutboxMessage).where(OutboxMessage.status == "delivered")),
            healed=scalar(select(count).select_from(Discrepancy).where(
                Discrepancy.run_id == run_id, Discrepancy.status == "healed")),
        )
