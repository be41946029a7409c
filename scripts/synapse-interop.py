#!/usr/bin/python3
"""Federation interop between a running Myelin and a running Synapse, over their client APIs.

Not part of CI (Synapse cannot run there): run by hand, as docs/federation.md ("Interoperability
with Synapse") describes, with both servers federating over TLS on loopback and open
registration on both.

usage: /usr/bin/python3 scripts/synapse-interop.py MYELIN_CLIENT_URL SYNAPSE_CLIENT_URL [FLOW...]

/usr/bin/python3 because signing device keys needs python3-signedjson (installed with Synapse's
packages by the Synapse setup script). Every flow runs in both directions. "M->S": the Myelin
user is the one who acts on the Synapse side — joins a Synapse room, sends into a Synapse room,
types, reads, asks Synapse for a profile, keys or room list, is invited/kicked/banned by a Synapse
user. "S->M": the same with the servers swapped. Rooms are made as version 10 (ROOM_VERSION in
the environment to change it): Synapse 1.67 knows versions 1 to 10 only.
"""
import json, os, sys, time, uuid, urllib.parse
import requests
import signedjson.key, signedjson.sign

MY_URL, SY_URL = sys.argv[1], sys.argv[2]
ONLY = set(sys.argv[3:])
RUN = uuid.uuid4().hex[:6]
RESULTS = []
# Synapse 1.67 knows room versions 1-10 (and cannot parse v12 room ids): rooms are made as v10 unless ROOM_VERSION is set
ROOM_VERSION = os.environ.get('ROOM_VERSION', '10')


class Fail(Exception):
    pass


class User:
    def __init__(self, base, name):
        self.base = base
        self.s = requests.Session()
        r = self.s.post(f'{base}/_matrix/client/v3/register', json={'username': f'{name}{RUN}', 'password': 'pw-' + RUN,
                                                                     'auth': {'type': 'm.login.dummy'}})
        if r.status_code != 200:
            raise Fail(f'register {name} on {base}: {r.status_code} {r.text}')
        j = r.json()
        self.user_id, self.token, self.device = j['user_id'], j['access_token'], j['device_id']
        self.s.headers['Authorization'] = f'Bearer {self.token}'
        self.since = None
        self.server = self.user_id.split(':', 1)[1]

    def __repr__(self):
        return self.user_id

    def req(self, method, path, body=None, ok=(200,), **params):
        r = self.s.request(method, f'{self.base}/_matrix/client/v3{path}', json=body, params=params or None, timeout=90)
        if ok and r.status_code not in ok:
            raise Fail(f'{self.user_id} {method} {path}: {r.status_code} {r.text[:400]}')
        try:
            return r.json() if r.content else {}
        except ValueError:
            return {'_raw': r.text}

    def sync(self, timeout=1000):
        # a timeline limit above every burst, so that no sync answer is `limited`
        p = {'timeout': str(timeout), 'filter': json.dumps({'room': {'timeline': {'limit': 500}}})}
        if self.since:
            p['since'] = self.since
        j = self.req('GET', '/sync', **p)
        self.since = j['next_batch']
        return j

    def wait_sync(self, pred, what, deadline=30):
        end = time.time() + deadline
        while time.time() < end:
            j = self.sync()
            v = pred(j)
            if v:
                return v
        raise Fail(f'{self.user_id}: no {what} within {deadline}s')

    def send(self, room, body, etype='m.room.message'):
        return self.req('PUT', f'/rooms/{q(room)}/send/{etype}/{uuid.uuid4().hex}', {'msgtype': 'm.text', 'body': body})['event_id']

    def join(self, target, via=None):
        params = {'server_name': via} if via else {}
        return self.req('POST', f'/join/{q(target)}', {}, **params)['room_id']

    def membership(self, room, uid):
        r = self.s.get(f'{self.base}/_matrix/client/v3/rooms/{q(room)}/state/m.room.member/{q(uid)}', timeout=30)
        return r.json().get('membership') if r.status_code == 200 else None

    def wait_membership(self, room, uid, want, deadline=30):
        end = time.time() + deadline
        while time.time() < end:
            m = self.membership(room, uid)
            if m == want:
                return
            time.sleep(0.3)
        r = self.s.get(f'{self.base}/_matrix/client/v3/rooms/{q(room)}/state/m.room.member/{q(uid)}', timeout=30)
        raise Fail(f'{self.user_id} sees {uid} as {r.status_code} {r.text[:300]} in {room}, not {want}')


def q(s):
    return urllib.parse.quote(s, safe='')


def room_timeline(j, room):
    if j.get('rooms', {}).get('join', {}).get(room, {}).get('timeline', {}).get('limited'):
        print(f'  (limited timeline for {room}: some events were only in the gap)')
    return j.get('rooms', {}).get('join', {}).get(room, {}).get('timeline', {}).get('events', [])


def room_ephemeral(j, room):
    return j.get('rooms', {}).get('join', {}).get(room, {}).get('ephemeral', {}).get('events', [])


def flow(name):
    def deco(fn):
        def run():
            if ONLY and name not in ONLY:
                return
            for direction, actor_base, other_base in (('M->S', MY_URL, SY_URL), ('S->M', SY_URL, MY_URL)):
                t0 = time.time()
                try:
                    note = fn(actor_base, other_base) or ''
                    RESULTS.append((name, direction, 'works', note))
                except Exception as e:  # noqa
                    RESULTS.append((name, direction, 'FAILS', f'{type(e).__name__}: {e}'))
                print(f'{name:14} {direction}  {RESULTS[-1][2]}  {RESULTS[-1][3]}  ({time.time() - t0:.1f}s)', flush=True)
        return run
    return deco


def public_room(host, name, alias=True):
    body = {'preset': 'public_chat', 'name': name, 'room_version': ROOM_VERSION}
    if alias:
        body['room_alias_name'] = f'{name}{RUN}'
    r = host.req('POST', '/createRoom', body)
    return r['room_id'], r.get('room_alias')


# "M->S" direction of a membership flow: the joiner lives on actor_base's server, the room on other_base's.
@flow('join')
def f_join(joiner_base, host_base):
    host = User(host_base, 'jhost')
    a, b = User(joiner_base, 'jbyid'), User(joiner_base, 'jbyalias')
    room, alias = public_room(host, 'joinroom')
    assert a.join(room, via=host.server) == room
    assert b.join(alias) == room
    host.wait_membership(room, a.user_id, 'join')
    host.wait_membership(room, b.user_id, 'join')
    # the joiner sees the room's state
    st = a.req('GET', f'/rooms/{q(room)}/state')
    names = [e for e in st if e['type'] == 'm.room.name']
    if not names or names[0]['content'].get('name') != 'joinroom':
        raise Fail(f'joiner state has no room name: {names}')
    return 'by id (server_name) and by alias'


def shared_room(a_base, b_base, tag):
    """A room hosted on b's server, with a user of each server joined."""
    b = User(b_base, f'{tag}b')
    a = User(a_base, f'{tag}a')
    room, _ = public_room(b, tag, alias=False)
    a.join(room, via=b.server)
    b.wait_membership(room, a.user_id, 'join')
    return a, b, room


@flow('messages')
def f_messages(sender_base, receiver_base):
    # room hosted by the receiver's server; sender sends a burst of 100; both sides send
    s, r, room = shared_room(sender_base, receiver_base, 'msg')
    r.sync(0)
    N = 100
    sent = [s.send(room, f'burst {i}') for i in range(N)]
    got = []

    def pred(j):
        for e in room_timeline(j, room):
            if e['type'] == 'm.room.message' and e['sender'] == s.user_id:
                got.append(e['event_id'])
        return len(got) >= N

    r.got = got
    t0 = time.time()
    r.wait_sync(pred, f'{N} messages', deadline=120)
    t1 = time.time() - t0
    if got != sent:
        raise Fail(f'order/dupes differ: got {len(got)} unique {len(set(got))}; in order: {got == sent}')
    # and the reply direction inside the same room
    s.sync(0)
    rep = [r.send(room, f'reply {i}') for i in range(10)]
    got2 = []

    def pred2(j):
        for e in room_timeline(j, room):
            if e['type'] == 'm.room.message' and e['sender'] == r.user_id:
                got2.append(e['event_id'])
        return len(got2) >= 10

    s.wait_sync(pred2, '10 replies', deadline=60)
    if got2 != rep:
        raise Fail('replies out of order or duplicated')
    return f'{N} in order, once, via /sync in {t1:.1f}s; 10 replies back'


@flow('typing')
def f_typing(actor_base, observer_base):
    a, o, room = shared_room(actor_base, observer_base, 'typ')
    o.sync(0)
    a.req('PUT', f'/rooms/{q(room)}/typing/{q(a.user_id)}', {'typing': True, 'timeout': 20000})
    o.wait_sync(lambda j: any(e['type'] == 'm.typing' and a.user_id in e['content'].get('user_ids', [])
                              for e in room_ephemeral(j, room)), 'typing on')
    a.req('PUT', f'/rooms/{q(room)}/typing/{q(a.user_id)}', {'typing': False})
    o.wait_sync(lambda j: any(e['type'] == 'm.typing' and a.user_id not in e['content'].get('user_ids', [])
                              for e in room_ephemeral(j, room)), 'typing off')
    return 'start and stop'


@flow('receipts')
def f_receipts(actor_base, observer_base):
    a, o, room = shared_room(actor_base, observer_base, 'rcp')
    ev = o.send(room, 'read me')
    a.wait_sync(lambda j: any(e['event_id'] == ev for e in room_timeline(j, room)), 'the message')
    o.sync(0)
    a.req('POST', f'/rooms/{q(room)}/receipt/m.read/{q(ev)}', {})

    def pred(j):
        for e in room_ephemeral(j, room):
            if e['type'] == 'm.receipt' and a.user_id in e['content'].get(ev, {}).get('m.read', {}):
                return True
    o.wait_sync(pred, 'the m.read receipt')
    return 'm.read'


@flow('presence')
def f_presence(actor_base, observer_base):
    a, o, room = shared_room(actor_base, observer_base, 'prs')
    o.sync(0)
    msg = f'busy {RUN}'
    a.req('PUT', f'/presence/{q(a.user_id)}/status', {'presence': 'unavailable', 'status_msg': msg})

    def pred(j):
        for e in j.get('presence', {}).get('events', []):
            if e['sender'] == a.user_id and e['content'].get('presence') == 'unavailable' and e['content'].get('status_msg') == msg:
                return True
    o.wait_sync(pred, 'presence unavailable with status_msg')
    st = o.req('GET', f'/presence/{q(a.user_id)}/status')
    return f'/sync presence; GET status -> {st.get("presence")}'


@flow('displayname')
def f_displayname(actor_base, observer_base):
    a, o, room = shared_room(actor_base, observer_base, 'dn')
    dn = f'Renamed {RUN}'
    a.req('PUT', f'/profile/{q(a.user_id)}/displayname', {'displayname': dn})
    end = time.time() + 30
    while time.time() < end:
        r = o.s.get(f'{o.base}/_matrix/client/v3/rooms/{q(room)}/state/m.room.member/{q(a.user_id)}')
        if r.status_code == 200 and r.json().get('displayname') == dn:
            break
        time.sleep(0.3)
    else:
        raise Fail(f'member event not updated: {r.status_code} {r.text[:200]}')
    return 'the member event with the new name reaches the other server'


@flow('profile')
def f_profile(asker_base, owner_base):
    o, a = User(owner_base, 'pro'), User(asker_base, 'pra')
    dn = f'Profiled {RUN}'
    o.req('PUT', f'/profile/{q(o.user_id)}/displayname', {'displayname': dn})
    prof = a.req('GET', f'/profile/{q(o.user_id)}')
    if prof.get('displayname') != dn:
        raise Fail(f'remote /profile gives {prof}')
    one = a.req('GET', f'/profile/{q(o.user_id)}/displayname')
    if one.get('displayname') != dn:
        raise Fail(f'remote /profile/displayname gives {one}')
    return 'remote /profile and /profile/displayname (no avatar set)'


@flow('invite')
def f_invite(invitee_base, host_base):
    # host (on host_base) invites a user of invitee_base: accept, then another rejects
    host = User(host_base, 'invh')
    acc, rej = User(invitee_base, 'inva'), User(invitee_base, 'invr')
    room = host.req('POST', '/createRoom', {'preset': 'private_chat', 'name': 'invroom', 'room_version': ROOM_VERSION})['room_id']
    acc.sync(0)
    rej.sync(0)
    host.req('POST', f'/rooms/{q(room)}/invite', {'user_id': acc.user_id})
    host.req('POST', f'/rooms/{q(room)}/invite', {'user_id': rej.user_id})
    acc.wait_sync(lambda j: room in j.get('rooms', {}).get('invite', {}), 'invite in /sync')
    rej.wait_sync(lambda j: room in j.get('rooms', {}).get('invite', {}), 'invite in /sync')
    acc.req('POST', f'/rooms/{q(room)}/join', {})
    rej.req('POST', f'/rooms/{q(room)}/leave', {})
    host.wait_membership(room, acc.user_id, 'join')
    host.wait_membership(room, rej.user_id, 'leave')
    rej.wait_sync(lambda j: room in j.get('rooms', {}).get('leave', {}), 'rejected room under leave')
    # the accepter's /sync gives the joined room with its state (state + timeline): create, name, power levels, the inviter
    joined = acc.wait_sync(lambda j: j.get('rooms', {}).get('join', {}).get(room), 'the accepted room under join')
    evs = joined.get('state', {}).get('events', []) + joined.get('timeline', {}).get('events', [])
    have = {(e['type'], e.get('state_key')) for e in evs if 'state_key' in e}
    want = {('m.room.create', ''), ('m.room.name', ''), ('m.room.power_levels', ''), ('m.room.member', host.user_id)}
    if want - have:
        raise Fail(f'the accepted room in /sync lacks {sorted(want - have)} (has {sorted(have)})')
    return 'invite seen in /sync; accept joins, with the room state in /sync; reject leaves'


@flow('kick-ban')
def f_kickban(remote_base, host_base):
    # host's server owns the room, the remote user is kicked, rejoins, is banned, unbanned, rejoins, leaves
    host = User(host_base, 'kbh')
    u = User(remote_base, 'kbu')
    room, _ = public_room(host, 'kb', alias=False)
    u.join(room, via=host.server)
    host.wait_membership(room, u.user_id, 'join')
    host.req('POST', f'/rooms/{q(room)}/kick', {'user_id': u.user_id, 'reason': 'kick test'})
    u.wait_membership(room, u.user_id, 'leave')
    u.join(room, via=host.server)
    host.wait_membership(room, u.user_id, 'join')
    u.req('POST', f'/rooms/{q(room)}/leave', {})
    host.wait_membership(room, u.user_id, 'leave')
    u.join(room, via=host.server)
    host.wait_membership(room, u.user_id, 'join')
    u.sync(0)
    host.req('POST', f'/rooms/{q(room)}/ban', {'user_id': u.user_id, 'reason': 'ban test'})
    # a banned user may not read the room's state (both servers): the ban is looked for in /sync
    u.wait_sync(lambda j: any(e['type'] == 'm.room.member' and e.get('state_key') == u.user_id and e['content'].get('membership') == 'ban'
                              for e in j.get('rooms', {}).get('leave', {}).get(room, {}).get('timeline', {}).get('events', [])),
                'the ban under rooms.leave')
    r = u.s.post(f'{u.base}/_matrix/client/v3/join/{q(room)}', params={'server_name': host.server}, json={})
    if r.status_code != 403:
        raise Fail(f'banned user rejoin: {r.status_code} {r.text[:200]}')
    host.req('POST', f'/rooms/{q(room)}/unban', {'user_id': u.user_id})
    host.wait_membership(room, u.user_id, 'leave')
    r = u.s.post(f'{u.base}/_matrix/client/v3/join/{q(room)}', params={'server_name': host.server}, json={})
    if r.status_code == 403 and 'Cannot join user who was banned' in r.text:
        # Synapse joins from its own stale state, where the user is still banned: matrix-org/synapse#1563
        return 'kick, rejoin, leave, rejoin, ban, banned join 403, unban work; rejoin after unban refused by Synapse (synapse#1563)'
    if r.status_code != 200:
        raise Fail(f'rejoin after unban: {r.status_code} {r.text[:300]}')
    host.wait_membership(room, u.user_id, 'join')
    u.req('POST', f'/rooms/{q(room)}/leave', {})
    host.wait_membership(room, u.user_id, 'leave')
    return 'kick, rejoin, leave, rejoin, ban, banned join 403, unban, rejoin, leave'


@flow('publicrooms')
def f_directory(asker_base, host_base):
    host = User(host_base, 'dirh')
    a = User(asker_base, 'dira')
    room, alias = public_room(host, 'dirroom')
    host.req('PUT', f'/directory/list/room/{q(room)}', {'visibility': 'public'})
    res = a.req('GET', '/publicRooms', server=host.server, limit='100')
    ids = [c['room_id'] for c in res.get('chunk', [])]
    if room not in ids:
        raise Fail(f'room not in remote /publicRooms ({len(ids)} rooms)')
    res2 = a.req('POST', '/publicRooms', {'filter': {'generic_search_term': 'dirroom'}, 'limit': 10}, server=host.server)
    if room not in [c['room_id'] for c in res2.get('chunk', [])]:
        raise Fail('room not in remote POST /publicRooms with a filter')
    return 'GET and POST (with a filter) /publicRooms?server='


@flow('alias')
def f_alias(asker_base, host_base):
    host = User(host_base, 'alh')
    a = User(asker_base, 'ala')
    room, alias = public_room(host, 'alroom')
    al = a.req('GET', f'/directory/room/{q(alias)}')
    if al.get('room_id') != room:
        raise Fail(f'remote alias: {al}')
    return 'GET /directory/room/{remote alias}'


def upload_keys(u):
    key = signedjson.key.generate_signing_key(u.device)
    pub = signedjson.key.encode_verify_key_base64(signedjson.key.get_verify_key(key))
    curve = 'c' * 43
    dk = {'user_id': u.user_id, 'device_id': u.device, 'algorithms': ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
          'keys': {f'curve25519:{u.device}': curve, f'ed25519:{u.device}': pub}}
    signedjson.sign.sign_json(dk, u.user_id, key)
    otk = {'key': 'o' * 43}
    signedjson.sign.sign_json(otk, u.user_id, key)
    u.req('POST', '/keys/upload', {'device_keys': dk, 'one_time_keys': {'signed_curve25519:AAAAAQ': otk}})
    return dk


@flow('keys')
def f_keys(asker_base, owner_base):
    a, o, room = shared_room(asker_base, owner_base, 'key')
    dk = upload_keys(o)
    res = a.req('POST', '/keys/query', {'device_keys': {o.user_id: []}, 'timeout': 10000})
    got = res.get('device_keys', {}).get(o.user_id, {}).get(o.device)
    if not got or got.get('keys') != dk['keys']:
        raise Fail(f'keys/query: {json.dumps(res)[:400]}')
    cl = a.req('POST', '/keys/claim', {'one_time_keys': {o.user_id: {o.device: 'signed_curve25519'}}, 'timeout': 10000})
    keys = cl.get('one_time_keys', {}).get(o.user_id, {}).get(o.device, {})
    if 'signed_curve25519:AAAAAQ' not in keys:
        raise Fail(f'keys/claim: {json.dumps(cl)[:400]}')
    # a device added later shows in device_lists.changed of the asker
    a.sync(0)
    o2 = requests.post(f'{o.base}/_matrix/client/v3/login', json={'type': 'm.login.password', 'identifier': {
        'type': 'm.id.user', 'user': o.user_id}, 'password': 'pw-' + RUN}).json()
    o.device2 = o2['device_id']
    o.s.headers['Authorization'] = f'Bearer {o2["access_token"]}'
    o.device = o2['device_id']
    upload_keys(o)
    a.wait_sync(lambda j: o.user_id in j.get('device_lists', {}).get('changed', []), 'device_lists.changed for the new device')
    # the login and the key upload are two device-list updates: the first `changed` may come before the keys
    end = time.time() + 20
    while time.time() < end:
        res = a.req('POST', '/keys/query', {'device_keys': {o.user_id: []}, 'timeout': 10000})
        if o.device2 in res.get('device_keys', {}).get(o.user_id, {}):
            break
        a.sync(0)
    else:
        raise Fail(f'new device not in keys/query: {list(res.get("device_keys", {}).get(o.user_id, {}))}')
    return 'query, claim (signed OTK), new device -> device_lists.changed + query'


@flow('to-device')
def f_todevice(sender_base, receiver_base):
    s, r, room = shared_room(sender_base, receiver_base, 'td')
    r.sync(0)
    body = {'messages': {r.user_id: {r.device: {'hello': RUN}}}}
    s.req('PUT', f'/sendToDevice/m.test.interop/{uuid.uuid4().hex}', body)
    msgs = r.wait_sync(lambda j: [e for e in j.get('to_device', {}).get('events', []) if e['type'] == 'm.test.interop'], 'to-device')
    if msgs[0]['sender'] != s.user_id or msgs[0]['content'] != {'hello': RUN}:
        raise Fail(f'to-device: {msgs}')
    body = {'messages': {r.user_id: {'*': {'hello': 'all'}}}}
    s.req('PUT', f'/sendToDevice/m.test.interop/{uuid.uuid4().hex}', body)
    r.wait_sync(lambda j: [e for e in j.get('to_device', {}).get('events', []) if e['content'].get('hello') == 'all'], 'to-device *')
    return 'to one device and to *'


@flow('backfill')
def f_backfill(joiner_base, host_base):
    host = User(host_base, 'bfh')
    room, _ = public_room(host, 'bf', alias=False)
    N = 60
    for i in range(N):
        host.send(room, f'history {i}')
    j = User(joiner_base, 'bfj')
    j.join(room, via=host.server)
    seen, frm = [], None
    for _ in range(20):
        p = {'dir': 'b', 'limit': '30'}
        if frm:
            p['from'] = frm
        res = j.req('GET', f'/rooms/{q(room)}/messages', **p)
        seen += [e['content'].get('body') for e in res.get('chunk', []) if e['type'] == 'm.room.message']
        if 'end' not in res or not res.get('chunk'):
            break
        frm = res['end']
    want = [f'history {i}' for i in reversed(range(N))]
    hist = [b for b in seen if b and b.startswith('history')]
    if hist != want:
        raise Fail(f'/messages back gave {len(hist)} of {N} history messages (first: {hist[:3]})')
    return f'{N} earlier messages via /messages, in order'


if __name__ == '__main__':
    for f in (f_join, f_messages, f_typing, f_receipts, f_presence, f_displayname, f_profile, f_invite, f_kickban, f_directory, f_alias,
              f_keys, f_todevice, f_backfill):
        f()
    print()
    for r in RESULTS:
        print(' | '.join(r))
