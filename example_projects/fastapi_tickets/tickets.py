"""Event tickets: FastAPI + SQLModel, with booking as a durable async workflow.

The database steps are ``@DBOS.transaction`` functions on the application's own engines:
``create_event`` is a sync transaction with a SQLModel ``Session``; ``reserve_seat`` and
``mark_sent`` are async transactions with SQLModel's ``AsyncSession`` on an
``AsyncEngine`` (aiosqlite on SQLite, psycopg on PostgreSQL), so the event loop never
blocks on the database. Each one's writes commit together with its DBOS checkpoint: a
ticket is reserved exactly once even if the server dies in the middle of a booking.

Run it with ``python -m example_projects.fastapi_tickets`` (see README.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from pydantic import Field as InputField
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Field, Session, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from dbos_core import DBOS, DBOSConfig
from dbos_fastapi import DBOSMiddleware, install_exception_handlers

log = logging.getLogger("tickets")


class Event(SQLModel, table=True):
    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    seats_left: int


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    id: str = Field(primary_key=True, max_length=200)  # the booking workflow's ID
    event_id: int = Field(foreign_key="events.id")
    holder: str
    status: str  # reserved, then sent
    message_id: str | None = None


class SoldOutError(Exception):
    pass


# -- the transactions and the workflow --------------------------------------------


@DBOS.transaction()
def create_event(name: str, seats: int) -> int:
    session: Session = DBOS.sql_session  # a SQLModel Session, in DBOS's transaction
    event = Event(name=name, seats_left=seats)
    session.add(event)
    session.flush()
    assert event.id is not None
    return event.id


@DBOS.transaction()
async def reserve_seat(ticket_id: str, event_id: int, holder: str) -> None:
    session: AsyncSession = DBOS.sql_session  # SQLModel's AsyncSession
    event = await session.get(Event, event_id)
    if event is None or event.seats_left < 1:
        # Raising rolls the transaction back: nothing is written.
        raise SoldOutError(f"no seat left for event {event_id}")
    event.seats_left -= 1
    session.add(Ticket(id=ticket_id, event_id=event_id, holder=holder, status="reserved"))


class Outbox:
    """Where e-mails go (a file standing in for a mail service); slow on demand."""

    path: Path | None = None
    seconds = 0.0

    @classmethod
    def write(cls, line: str) -> None:
        if cls.path is not None:
            with open(cls.path, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())


@DBOS.step()
async def email_ticket(ticket_id: str, holder: str) -> str:
    Outbox.write(f"emailing {ticket_id} to {holder}")
    await asyncio.sleep(Outbox.seconds)
    Outbox.write(f"emailed {ticket_id} to {holder}")
    return f"msg-{ticket_id}"


@DBOS.transaction()
async def mark_sent(ticket_id: str, message_id: str) -> None:
    session: AsyncSession = DBOS.sql_session
    ticket = await session.get(Ticket, ticket_id)
    assert ticket is not None
    ticket.status, ticket.message_id = "sent", message_id


@DBOS.workflow()
async def book_ticket(event_id: int, holder: str) -> dict[str, Any]:
    ticket_id = DBOS.workflow_id or ""
    await reserve_seat(ticket_id, event_id, holder)  # exactly once, even across crashes
    message_id = await email_ticket(ticket_id, holder)
    await mark_sent(ticket_id, message_id)
    return {"ticket_id": ticket_id, "event_id": event_id, "holder": holder}


# -- the application -------------------------------------------------------------


class NewEvent(BaseModel):
    name: str = InputField(min_length=1, max_length=200)
    seats: int = InputField(ge=1, le=100_000)


class Booking(BaseModel):
    holder: str = InputField(min_length=1, max_length=100)


def async_url(url: str) -> str:
    if url.startswith("sqlite:"):
        return url.replace("sqlite:", "sqlite+aiosqlite:", 1)
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def create_app(app_database_url: str, system_database_url: str) -> FastAPI:
    """The app, its engines, and the DBOS configuration that uses them."""
    engine = sa.create_engine(sync_url(app_database_url))
    async_engine: AsyncEngine = create_async_engine(async_url(app_database_url))
    sessions = async_sessionmaker(async_engine, class_=AsyncSession, expire_on_commit=False)
    config: DBOSConfig = {
        "name": "fastapi-tickets",
        "system_database_url": system_database_url,
        # The app's own engines: DBOS's transactions share their pools and sessions.
        "application_database_engine": engine,
        "application_session_factory": Session,
        "application_async_session_factory": sessions,
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        SQLModel.metadata.create_all(engine, tables=[Event.__table__, Ticket.__table__])
        yield

    app = FastAPI(title="Tickets", lifespan=lifespan)
    app.state.engine, app.state.async_engine = engine, async_engine
    install_exception_handlers(app)

    @app.post("/events", status_code=201)
    def new_event(event: NewEvent) -> dict[str, int]:
        """A sync endpoint (run in the threadpool) and a sync SQLModel transaction."""
        return {"event_id": create_event(event.name, event.seats)}

    @app.get("/events/{event_id}")
    async def get_event(event_id: int) -> dict[str, Any]:
        async with sessions() as session:  # the app's own session, outside any transaction
            event = await session.get(Event, event_id)
        if event is None:
            raise HTTPException(404, f"no event {event_id}")
        return {"event_id": event_id, "name": event.name, "seats_left": event.seats_left}

    @app.post("/events/{event_id}/tickets", status_code=202)
    async def book(event_id: int, booking: Booking) -> dict[str, str]:
        """Start the booking (send a dbos-idempotency-key to make retries safe)."""
        await get_event(event_id)
        handle = await DBOS.start_workflow_async(book_ticket, event_id, booking.holder)
        return {"ticket_id": handle.get_workflow_id()}

    @app.get("/tickets/{ticket_id}")
    async def get_ticket(ticket_id: str) -> dict[str, Any]:
        status = await (await DBOS.retrieve_workflow_async(ticket_id)).get_status()
        async with sessions() as session:
            ticket = await session.get(Ticket, ticket_id)
        return {
            "ticket_id": ticket_id,
            "workflow": status.status,
            "status": None if ticket is None else ticket.status,
            "holder": None if ticket is None else ticket.holder,
        }

    # Launches DBOS after the lifespan's startup (recovering interrupted bookings).
    app.add_middleware(DBOSMiddleware, config=config)
    return app


def configure_from_env() -> FastAPI:
    Outbox.path = Path(os.environ.get("TICKETS_OUTBOX", "outbox.log"))
    Outbox.seconds = float(os.environ.get("TICKETS_EMAIL_SECONDS", "0"))
    return create_app(
        os.environ.get("TICKETS_DATABASE_URL", "sqlite:///tickets.sqlite"),
        os.environ.get("DBOS_SYSTEM_DATABASE_URL", "sqlite:///tickets-dbos.sqlite"),
    )
