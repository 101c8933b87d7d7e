"""What the pipeline reports as it works; the runtime turns it into metrics (as the Vipps client's observer).

Every report names the merchant: ``msn`` is a configured merchant's MSN, or None for a command that named
no merchant of this deployment (the runtime labels those ``-``).
"""

from __future__ import annotations

import datetime as dt


class PipelineObserver:
    """Does nothing; the runtime's metrics subclass it."""

    def waited_in_queue(self, queue: str, seconds: float) -> None:
        """A delivery started ``seconds`` after it was enqueued."""

    def finished(self, command_type: str, outcome: str, issued_at: dt.datetime | None, msn: str | None) -> None:
        """A delivery ended: succeeded, failed, dead_lettered, rejected, duplicate. With ``issued_at``, the
        command reached its outcome now."""

    def retry_scheduled(self, command_type: str, reason: str, msn: str | None) -> None:
        """A transient failure; the command is tried again later."""

    def replayed(self, command_type: str, msn: str | None) -> None:
        """A finished command was delivered again; its events were re-published."""

    def budget_wait(self, operation: str, msn: str | None) -> None:
        """A call was not sent: our share of Vipps's rate limit for it is used up for now."""

    def dead_lettered(self, reason: str, msn: str | None) -> None:
        """A new record reached the dead-letter store (``reason`` as the record's)."""

    def published(self, kinds: list[str]) -> None:
        """Events of these types went onto the events queue."""

    def hint_handled(self, event_type: str, outcome: str, seconds: float | None) -> None:
        """A webhook delivery was carried out (``outcome``: published, no_change, poll_soon, or why not),
        ``seconds`` after the receiver took it."""

    def transition_seen(self, via: str) -> None:
        """The watcher saw an agreement or charge change first through ``via`` (webhook, poll, command): the
        observation yields its transition event (the event's ``observed_by``)."""

    def charge_batch(self, msn: str, size: int, outcome: str) -> None:
        """A batch of ``size`` charges for the batch endpoint: ``sent`` (answered), ``failed`` (a transient
        failure: each charge is retried), ``not_sent`` (our rate budget), ``refused`` (a 4xx for the whole)."""
