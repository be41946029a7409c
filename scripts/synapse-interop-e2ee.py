#!/usr/bin/python3
"""E2EE between a running Myelin and a running Synapse: a matrix-nio (olm) client on each side.

Not part of CI, like synapse-interop.py (whose users and helpers it reuses); run by hand as
docs/federation.md ("Interoperability with Synapse") describes.

usage: /usr/bin/python3 scripts/synapse-interop-e2ee.py MYELIN_CLIENT_URL SYNAPSE_CLIENT_URL

Twice, once in an encrypted room on Synapse and once in one on Myelin: a third user on the room's
server invites one nio client of each server; both accept (test/clients/nio_e2ee.py's `join` waits
until the room is known as encrypted with the peer joined), learn each other's device, and each
sends a message that the other decrypts. nio's logs go to $TMPDIR/interop-nio-NAME.log.
"""
import json, os, subprocess, sys, tempfile, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
NIO = os.path.join(HERE, '..', 'test', 'clients', 'nio_e2ee.py')
# the interop script's helpers, without running its flows (it runs them under `if __name__ == '__main__':`)
sys.argv = [sys.argv[0], sys.argv[1], sys.argv[2]]
exec(open(os.path.join(HERE, 'synapse-interop.py')).read().split("if __name__ == '__main__':")[0])


def spawn(base, name):
    log = open(os.path.join(tempfile.gettempdir(), f'interop-nio-{name}.log'), 'w')
    return subprocess.Popen(['/usr/bin/python3', NIO, base, name, tempfile.mkdtemp(prefix='interop-nio-')], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log, text=True)


def tell(p, **cmd):
    p.stdin.write(json.dumps(cmd) + '\n')
    p.stdin.flush()


def answer(p):
    ev = json.loads(p.stdout.readline() or '{"event": "error", "message": "the nio client exited"}')
    if ev['event'] == 'error':
        raise Fail(ev['message'])
    return ev


def ask(p, **cmd):
    tell(p, **cmd)
    return answer(p)


failed = False
for host_base, label in ((SY_URL, 'room on Synapse'), (MY_URL, 'room on Myelin')):
    tag = uuid.uuid4().hex[:6]
    m, s = spawn(MY_URL, f'niom{tag}'), spawn(SY_URL, f'nios{tag}')
    try:
        rm, rs = answer(m), answer(s)
        host = User(host_base, 'e2h')
        encryption = {'type': 'm.room.encryption', 'state_key': '', 'content': {'algorithm': 'm.megolm.v1.aes-sha2'}}
        room = host.req('POST', '/createRoom', {'preset': 'private_chat', 'room_version': ROOM_VERSION, 'initial_state': [encryption]})
        room = room['room_id']
        for u in (rm, rs):
            host.req('POST', f'/rooms/{q(room)}/invite', {'user_id': u['user_id']})
        tell(m, cmd='join', room_id=room, peer=host.user_id)
        tell(s, cmd='join', room_id=room, peer=host.user_id)
        answer(m), answer(s)
        ask(m, cmd='devices', user_id=rs['user_id'], device_id=rs['device_id'])
        ask(s, cmd='devices', user_id=rm['user_id'], device_id=rm['device_id'])
        ask(m, cmd='send', room_id=room, body='secret from myelin')
        ask(s, cmd='receive', room_id=room, sender=rm['user_id'], body='secret from myelin')
        ask(s, cmd='send', room_id=room, body='secret from synapse')
        ask(m, cmd='receive', room_id=room, sender=rs['user_id'], body='secret from synapse')
        print(label, 'works: decrypted both ways', flush=True)
    except Exception as e:  # noqa
        failed = True
        print(label, 'FAILS', f'{type(e).__name__}: {e}', flush=True)
    finally:
        for p in (m, s):
            try:
                tell(p, cmd='quit')
            except Exception:  # noqa
                pass
            try:
                p.wait(10)
            except Exception:  # noqa
                p.kill()
sys.exit(1 if failed else 0)
