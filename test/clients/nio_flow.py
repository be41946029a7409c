"""The core client flow driven by matrix-nio, an independent client implementation.

Run by test/clients/nio.test.ts as: /usr/bin/python3 nio_flow.py BASE_URL
Prints one JSON object with what each step observed; exits non-zero on an unexpected failure.
"""

import asyncio
import json
import sys
import time

from nio import (
    AsyncClient,
    JoinError,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

BASE = sys.argv[1]
results = {}


async def registered(name):
    client = AsyncClient(BASE, name)
    response = await client.register(name, f"pw-{name}-secret")
    if not getattr(response, "access_token", None):
        raise RuntimeError(f"register {name} failed: {response}")
    await client.sync(timeout=0)
    return client


async def sync_until(client, predicate, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.sync(timeout=2000)
        if not isinstance(response, SyncResponse):
            raise RuntimeError(f"sync failed while waiting for {what}: {response}")
        value = predicate(response)
        if value:
            return value
    raise RuntimeError(f"timed out waiting for {what}")


async def main():
    alice = await registered("nioalice")
    bob = await registered("niobob")

    created = await alice.room_create(name="nio room", invite=[bob.user_id])
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    results["invite_seen"] = await sync_until(bob, lambda r: room_id in r.rooms.invite, "the invite")
    joined = await bob.join(room_id)
    results["joined"] = not isinstance(joined, JoinError)

    sent = []
    for i in range(5):
        response = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"n{i}"})
        assert isinstance(response, RoomSendResponse), response
        sent.append(response.event_id)

    received = []

    def collect(response):
        room = response.rooms.join.get(room_id)
        if room:
            for event in room.timeline.events:
                if isinstance(event, RoomMessageText):
                    received.append(event.body)
        return len(received) >= 5

    await sync_until(bob, collect, "five messages")
    results["received"] = received

    await alice.room_typing(room_id, True, 10000)

    def typing_seen(response):
        room = response.rooms.join.get(room_id)
        if not room:
            return False
        for event in room.ephemeral:
            if getattr(event, "users", None) and alice.user_id in event.users:
                return True
        return False

    results["typing_seen"] = await sync_until(bob, typing_seen, "typing")

    await bob.room_read_markers(room_id, sent[-1], sent[-1])

    def receipt_seen(response):
        room = response.rooms.join.get(room_id)
        if not room:
            return False
        for event in room.ephemeral:
            for receipt in getattr(event, "receipts", []) or []:
                if receipt.user_id == bob.user_id and receipt.event_id == sent[-1]:
                    return True
        return False

    results["receipt_seen"] = await sync_until(alice, receipt_seen, "bob's receipt")

    await alice.set_displayname("Alice Nio")

    def name_seen(response):
        room = response.rooms.join.get(room_id)
        if not room:
            return False
        for event in room.timeline.events:
            if getattr(event, "state_key", None) == alice.user_id and getattr(event, "content", {}).get("displayname") == "Alice Nio":
                return True
        return False

    results["displayname_seen"] = await sync_until(bob, name_seen, "the display name change")

    # Paginate back from the end: every message comes back once, newest first.
    token = bob.next_batch
    bodies = []
    while True:
        page = await bob.room_messages(room_id, start=token, limit=3)
        assert isinstance(page, RoomMessagesResponse), page
        bodies.extend(e.body for e in page.chunk if isinstance(e, RoomMessageText))
        if not page.end or not page.chunk:
            break
        token = page.end
    results["paginated"] = bodies

    redacted = await alice.room_redact(room_id, sent[0], reason="oops")
    results["redacted"] = getattr(redacted, "event_id", None) is not None

    await bob.room_leave(room_id)
    await alice.room_invite(room_id, bob.user_id)
    await bob.join(room_id)
    ban = await alice.room_ban(room_id, bob.user_id, reason="bye")
    results["banned"] = getattr(ban, "transport_response", None) is not None and ban.transport_response.status == 200
    rejoin = await bob.join(room_id)
    results["rejoin_refused"] = isinstance(rejoin, JoinError) and rejoin.status_code == "M_FORBIDDEN"

    await alice.close()
    await bob.close()
    print(json.dumps(results))


asyncio.run(main())
