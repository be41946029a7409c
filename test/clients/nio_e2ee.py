"""matrix-nio with olm as one side of an encrypted chat with a matrix-js-sdk (rust crypto) client.

Run by test/clients/nio-e2ee.test.ts as:
    /usr/bin/python3 nio_e2ee.py BASE_URL USERNAME STORE_DIR

It speaks JSON lines: commands arrive on stdin, one object per line ({"cmd": ...}); every answer is
one object on stdout ({"event": ...}). Anything else (nio's log with NIO_DEBUG=1, tracebacks) goes
to stderr. An unexpected failure is answered with {"event": "error", "message": ...} and exit 1.

Commands:
    join    {room_id, peer}            wait for the invite, join, wait until the room is known
                                       as encrypted with the peer joined
    devices {user_id, device_id, via_sync?}
                                       query keys until the peer's device is known (via_sync:
                                       only sync, nio learns of it from device_lists)
    send    {room_id, body}            send an encrypted m.text (sharing a megolm session with the
                                       room's devices first; they are not verified, hence
                                       ignore_unverified_devices)
    receive {room_id, sender, body}    sync until an event from sender decrypts to that body
    quit
"""

import asyncio
import json
import os
import sys
import time
import traceback

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    KeysQueryResponse,
    KeysUploadResponse,
    MegolmEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

BASE, USERNAME, STORE_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
STEP_TIMEOUT = 150  # seconds; generous, the machine may be busy

if os.environ.get("NIO_DEBUG"):
    import logbook
    from nio.log import logger_group

    logger_group.level = logbook.DEBUG
    logbook.StreamHandler(sys.stderr, level="DEBUG").push_application()


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def log(message):
    sys.stderr.write(f"nio_e2ee: {message}\n")
    sys.stderr.flush()


class Nio:
    def __init__(self):
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        self.client = AsyncClient(BASE, USERNAME, store_path=STORE_DIR, config=config)
        # Encrypted room events that could not be decrypted yet (their room key may come later).
        self.undecrypted = []
        self.received = []  # decrypted RoomMessageText events, as (room_id, event)

    async def sync_once(self):
        response = await self.client.sync(timeout=1000)
        if not isinstance(response, SyncResponse):
            raise RuntimeError(f"sync failed: {response}")
        for room_id, room in response.rooms.join.items():
            for event in room.timeline.events:
                if isinstance(event, MegolmEvent):
                    log(f"undecryptable for now: {event.event_id} session {event.session_id}")
                    self.undecrypted.append((room_id, event))
                elif isinstance(event, RoomMessageText):
                    self.received.append((room_id, event))
        # Room keys arrive as olm-encrypted to-device messages; nio has handled those of this sync
        # by now, so earlier events may decrypt.
        still = []
        for room_id, event in self.undecrypted:
            decrypted = self.client.decrypt_event(event)
            if isinstance(decrypted, RoomMessageText):
                self.received.append((room_id, decrypted))
            else:
                still.append((room_id, event))
        self.undecrypted = still
        # What a sync_forever loop would do: keep keys uploaded and devices up to date.
        if self.client.should_upload_keys:
            await self.upload_keys()
        if self.client.should_query_keys:
            await self.query_keys()
        return response

    async def sync_until(self, predicate, what):
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            await self.sync_once()
            value = predicate()
            if value:
                return value
        raise RuntimeError(f"timed out waiting for {what}")

    async def upload_keys(self):
        response = await self.client.keys_upload()
        if not isinstance(response, KeysUploadResponse):
            raise RuntimeError(f"keys upload failed: {response}")
        return response

    async def query_keys(self):
        response = await self.client.keys_query()
        if not isinstance(response, KeysQueryResponse):
            raise RuntimeError(f"keys query failed: {response}")
        return response

    async def start(self):
        response = await self.client.register(USERNAME, f"pw-{USERNAME}-secret")
        if not getattr(response, "access_token", None):
            raise RuntimeError(f"register failed: {response}")
        uploaded = await self.upload_keys()
        await self.sync_once()
        keys = self.client.olm.account.identity_keys
        emit(
            "ready",
            user_id=self.client.user_id,
            device_id=self.client.device_id,
            curve25519=keys["curve25519"],
            ed25519=keys["ed25519"],
            one_time_key_counts=uploaded.signed_curve25519_count,
        )

    async def join(self, room_id, peer):
        await self.sync_until(lambda: room_id in self.client.invited_rooms, "the invite")
        joined = await self.client.join(room_id)
        if isinstance(joined, JoinError):
            raise RuntimeError(f"join failed: {joined}")

        def ready():
            room = self.client.rooms.get(room_id)
            return room is not None and room.encrypted and peer in room.users

        await self.sync_until(ready, "the joined encrypted room")
        room = self.client.rooms[room_id]
        emit("joined", room_id=room_id, encrypted=room.encrypted, members=sorted(room.users.keys()))

    async def devices(self, user_id, device_id, via_sync=False):
        """Waits until nio knows the device. With via_sync, nio only syncs: it must learn of the
        device from device_lists.changed in /sync (then nio queries the user's keys itself)."""

        def find():
            for device in self.client.device_store.active_user_devices(user_id):
                if device.id == device_id:
                    return device
            return None

        deadline = time.monotonic() + STEP_TIMEOUT
        while find() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {user_id}'s device {device_id}")
            if not via_sync:
                self.client.olm.users_for_key_query.add(user_id)
                await self.query_keys()
                if find() is not None:
                    break
            await self.sync_once()
        device = find()
        emit("devices", user_id=user_id, device_id=device.id, curve25519=device.curve25519, ed25519=device.ed25519)

    async def send(self, room_id, body):
        response = await self.client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": body},
            ignore_unverified_devices=True,
        )
        if not isinstance(response, RoomSendResponse):
            raise RuntimeError(f"send failed: {response}")
        session = self.client.olm.outbound_group_sessions.get(room_id)
        emit("sent", event_id=response.event_id, session_id=session.id if session else None)

    async def receive(self, room_id, sender, body):
        def find():
            for rid, event in self.received:
                if rid == room_id and event.sender == sender and event.body == body:
                    return event
            return None

        try:
            event = await self.sync_until(find, f'"{body}" from {sender}')
        except RuntimeError:
            pending = [(e.event_id, e.session_id) for _, e in self.undecrypted]
            raise RuntimeError(f'timed out waiting for "{body}" from {sender}; undecrypted: {pending}')
        emit(
            "received",
            event_id=event.event_id,
            sender=event.sender,
            body=event.body,
            decrypted=bool(getattr(event, "decrypted", False)),
            verified=bool(getattr(event, "verified", False)),
        )


async def read_line():
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main():
    nio = Nio()
    try:
        await nio.start()
        while True:
            line = await read_line()
            if not line:
                break
            command = json.loads(line)
            cmd = command.pop("cmd")
            if cmd == "quit":
                break
            handler = {"join": nio.join, "devices": nio.devices, "send": nio.send, "receive": nio.receive}.get(cmd)
            if handler is None:
                raise RuntimeError(f"unknown command {cmd}")
            log(f"command {cmd} {command}")
            await handler(**command)
        emit("bye")
    except Exception as err:  # noqa: BLE001 - reported to the driving test
        traceback.print_exc(file=sys.stderr)
        emit("error", message=f"{type(err).__name__}: {err}")
        await nio.client.close()
        sys.exit(1)
    await nio.client.close()


asyncio.run(main())
