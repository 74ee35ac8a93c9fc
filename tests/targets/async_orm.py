"""An asyncio service shaped like the one issue 33 was found on: SQLAlchemy's ORM on an sqlite
file and pydantic models, with tasks suspended mid-request that keep their models alive only
through their coroutines (a task awaits a coroutine that awaits an Event), so what holds a
model is the chain ``_asyncio.Task -> coroutine -> coroutine -> frame``.

usage: async_orm.py TRUTH_PATH

Each of TASKS tasks validates an ``OrderIn`` (with its ``Item``s), stores it through an ORM
``Session``, reads it back into an ``OrderOut`` (``from_attributes``) and then waits on the
gate with its session open. Once every task waits, the loop is left (the tasks stay pending,
kept by ``TASKS``) and the truth is the GC census (``_truth.publish_settled``) plus how many
models were built; then the main thread sleeps.

Needs SQLAlchemy and pydantic (the web venvs of scripts/provision-venvs.sh).
"""

import asyncio
import os
import sys

import _truth
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

TRUTH = sys.argv[1]
SCRATCH = os.path.dirname(os.path.abspath(TRUTH))
TASKS = 12
ITEMS = 3


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer: Mapped[str] = mapped_column(String(40))
    lines: Mapped[list["Line"]] = relationship(back_populates="order")


class Line(Base):
    __tablename__ = "lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    sku: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int]
    order: Mapped[Order] = relationship(back_populates="lines")


class Item(BaseModel):
    sku: str
    quantity: int


class OrderIn(BaseModel):
    customer: str
    items: list[Item]


class LineOut(BaseModel):
    model_config = {"from_attributes": True}
    sku: str
    quantity: int


class OrderOut(BaseModel):
    model_config = {"from_attributes": True}
    id: int
    customer: str
    lines: list[LineOut]


ENGINE = create_engine("sqlite:///" + os.path.join(SCRATCH, "orders.sqlite3"))
# Made in main(), with the loop (before 3.10 an Event binds the loop current when it is made).
GATE = None
TASKS_KEPT = []
WAITING = [0]


async def wait_for_release(order_in, order_out):
    # Suspended here: order_in and order_out are this coroutine's locals, nothing else keeps them.
    WAITING[0] += 1
    await GATE.wait()
    return order_in.customer, order_out.id


async def handle(n):
    payload = {
        "customer": "customer-%d" % n,
        "items": [{"sku": "sku-%d-%d" % (n, k), "quantity": k + 1} for k in range(ITEMS)],
    }
    order_in = OrderIn.model_validate(payload)
    session = Session(ENGINE)
    row = Order(customer=order_in.customer, lines=[Line(sku=i.sku, quantity=i.quantity) for i in order_in.items])
    session.add(row)
    session.commit()
    await asyncio.sleep(0)
    stored = session.scalars(select(Order).where(Order.id == row.id)).one()
    order_out = OrderOut.model_validate(stored, from_attributes=True)
    try:
        return await wait_for_release(order_in, order_out)
    finally:
        session.close()


async def start_all():
    for n in range(TASKS):
        TASKS_KEPT.append(asyncio.get_running_loop().create_task(handle(n), name="order-%d" % n))
    while WAITING[0] < TASKS:
        await asyncio.sleep(0.01)


def main():
    Base.metadata.create_all(ENGINE)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    global GATE
    GATE = asyncio.Event()
    loop.run_until_complete(start_all())
    fields = {"tasks": TASKS, "orders_in": TASKS, "items": TASKS * ITEMS, "orders_out": TASKS, "lines_out": TASKS * ITEMS}
    _truth.publish_settled(TRUTH, fields)
    _truth.idle()


main()
