// Two independent end-to-end encryption implementations chat through the real `bin/myelin start`
// process: matrix-nio with libolm (Debian's python3-matrix-nio and python3-olm, through
// /usr/bin/python3) and matrix-js-sdk 37.5.0 with its rust crypto (`useIndexedDB: false`, as in
// e2ee-js-sdk.test.ts). Each decrypts what the other sends in an m.megolm.v1.aes-sha2 room: the
// room keys travel as olm-encrypted to-device messages, after each side has found the other's
// device keys (/keys/query) and claimed a one-time key (/keys/claim).
//
// nio runs as a child process (test/clients/nio_e2ee.py) that speaks JSON lines: this file writes
// one command per line to its stdin and waits for the matching answer on its stdout. Every wait is
// bounded by a generous timeout; none of the assertions depends on how fast anything is.
//
// The suite runs against one process and against a worker cluster of real processes (through the
// built-in router, device_lists and to_device written by a stream-writer worker).

import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createClient, MsgType, PendingEventOrdering, type MatrixClient, type MatrixEvent } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { startE2eeCluster } from '../helpers/e2ee-cluster.js';
import { startServerProcess } from '../helpers/server-process.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually as eventuallyWithin } from '../helpers/wait.js';

/** Polls `check` until it returns something truthy; nio and rust crypto get two minutes. */
const eventually = <T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 120_000): Promise<T> =>
  eventuallyWithin(check, what, ms);

(logger as unknown as { setLevel(level: string): void }).setLevel(process.env.E2EE_DEBUG ? 'debug' : 'silent');
// The rust crypto logs through console.debug/info; keep the test output readable.
console.debug = () => undefined;
console.info = () => undefined;

const script = join(dirname(fileURLToPath(import.meta.url)), 'nio_e2ee.py');
const STEP_MS = 180_000; // the script's own waits give up after 150 s and say why
const MEGOLM = 'm.megolm.v1.aes-sha2';

type NioAnswer = { event: string } & Record<string, unknown>;

/** The nio child process: commands in, JSON answers out, stderr kept for failure messages. */
class NioProcess {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly answers: NioAnswer[] = [];
  private wake: (() => void) | undefined;
  private stderr = '';
  private exited = false;

  constructor(baseUrl: string, username: string, storeDir: string) {
    this.child = spawn('/usr/bin/python3', [script, baseUrl, username, storeDir], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      if (process.env.NIO_DEBUG) process.stderr.write(chunk);
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      try {
        this.answers.push(JSON.parse(line) as NioAnswer);
      } catch {
        this.stderr += `(stdout, not JSON) ${line}\n`;
      }
      this.wake?.();
    });
    this.child.on('exit', () => {
      this.exited = true;
      this.wake?.();
    });
  }

  /** The next answer, which must be `event` (an `error` answer or an early exit fails the test). */
  async next(event: string, ms = STEP_MS): Promise<NioAnswer> {
    const deadline = Date.now() + ms;
    for (;;) {
      const answer = this.answers.shift();
      if (answer) {
        if (answer.event !== event) throw new Error(`nio answered ${JSON.stringify(answer)} where "${event}" was expected\n${this.stderr}`);
        return answer;
      }
      if (this.exited) throw new Error(`nio exited (${this.child.exitCode}) before "${event}"\n${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${event}" from nio within ${ms} ms\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  async command(cmd: string, args: Record<string, unknown>, answer: string): Promise<NioAnswer> {
    this.child.stdin.write(`${JSON.stringify({ cmd, ...args })}\n`);
    return this.next(answer);
  }

  async quit(): Promise<void> {
    if (this.exited) return;
    this.child.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The room's m.room.message events this client decrypted, in timeline order. */
function decrypted(client: MatrixClient, roomId: string): MatrixEvent[] {
  return (client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? []).filter(
    (e) => e.isEncrypted() && !e.isDecryptionFailure() && e.getType() === 'm.room.message',
  );
}

/** A homeserver to run the suite against. */
interface Target {
  baseUrl: string;
  serverName: string;
  /** Everything the server processes printed (for MYELIN_TEST_LOG_LEVEL). */
  output(): string;
  stop(): Promise<unknown>;
}

after(() => {
  // matrix-js-sdk leaves timers behind after stopClient (see e2ee-js-sdk.test.ts); everything
  // here is finished, so leave once the runner has reported.
  setTimeout(() => process.exit(), 2000).unref();
});

nioSuite('one process', async () => {
  const server = await startServerProcess();
  return { baseUrl: server.baseUrl, serverName: server.serverName, output: () => server.process.output(), stop: () => server.stop() };
});
nioSuite('a worker cluster (processes, through the built-in router)', async () => {
  const cluster = await startE2eeCluster();
  return {
    baseUrl: cluster.routerUrl!,
    serverName: cluster.serverName,
    output: () => cluster.supervisor.output(),
    stop: () => cluster.stop(),
  };
});

function nioSuite(label: string, start: () => Promise<Target>): void {
  describe(`matrix-nio (olm) and matrix-js-sdk (rust crypto) chat in an encrypted room: ${label}`, () => {
    let server: Target;
    let js: MatrixClient;
    let jsUser: string;
    let nio: NioProcess;
    let nioUser: string;
    let nioDevice: string;
    let nioKeys: { curve25519: string; ed25519: string };
    let roomId: string;
    const extraClients: MatrixClient[] = [];

    before(async () => {
      server = await start();
      const registered = await createClient({ baseUrl: server.baseUrl }).registerRequest({
        username: 'jsuser',
        password: 'pw-jsuser-secret',
        auth: { type: 'm.login.dummy' },
      });
      jsUser = registered.user_id;
      js = createClient({
        baseUrl: server.baseUrl,
        userId: jsUser,
        accessToken: registered.access_token!,
        deviceId: registered.device_id!,
      });
      await js.initRustCrypto({ useIndexedDB: false });
      await js.startClient({ initialSyncLimit: 30, pendingEventOrdering: PendingEventOrdering.Detached });
      await eventually(() => js.isInitialSyncComplete(), "js-sdk's initial sync");

      nio = new NioProcess(server.baseUrl, 'niouser', tempDir('myelin-nio-store-'));
      const ready = await nio.next('ready');
      nioUser = String(ready.user_id);
      nioDevice = String(ready.device_id);
      nioKeys = { curve25519: String(ready.curve25519), ed25519: String(ready.ed25519) };
      // nio uploaded its device keys and a batch of signed one-time keys, and the server counted them.
      assert.equal(nioUser, `@niouser:${server.serverName}`);
      assert.ok(Number(ready.one_time_key_counts) > 0, `one-time key count after upload: ${JSON.stringify(ready)}`);
    });

    after(async () => {
      js?.stopClient();
      for (const client of extraClients) client.stopClient();
      await nio?.quit();
      await server?.stop();
      // With MYELIN_TEST_LOG_LEVEL=debug (and NIO_DEBUG=1 for nio's side) a failure can be traced.
      if (process.env.MYELIN_TEST_LOG_LEVEL && server) process.stderr.write(server.output());
    });

    test('nio joins an encrypted room created by js-sdk; each finds the other device and its keys', async () => {
      const created = await js.createRoom({
        name: 'nio and js',
        preset: 'private_chat' as never,
        invite: [nioUser],
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: MEGOLM } }],
      });
      roomId = created.room_id;
      const joined = await nio.command('join', { room_id: roomId, peer: jsUser }, 'joined');
      assert.equal(joined.encrypted, true);
      assert.deepEqual(joined.members, [jsUser, nioUser].sort());
      await eventually(() => js.getRoom(roomId)?.getMember(nioUser)?.membership === 'join', 'js-sdk to see nio join');
      assert.equal(await js.getCrypto()!.isEncryptionEnabledInRoom(roomId), true);

      // js-sdk sees nio's device with the identity keys nio holds (device_lists + /keys/query).
      const device = await eventually(
        async () => (await js.getCrypto()!.getUserDeviceInfo([nioUser], true)).get(nioUser)?.get(nioDevice),
        "js-sdk to see nio's device",
      );
      assert.equal(device.getIdentityKey(), nioKeys.curve25519);
      assert.equal(device.getFingerprint(), nioKeys.ed25519);

      // nio sees js-sdk's device with the keys the rust crypto holds.
      const own = await js.getCrypto()!.getOwnDeviceKeys();
      const seen = await nio.command('devices', { user_id: jsUser, device_id: js.getDeviceId() }, 'devices');
      assert.deepEqual({ curve25519: seen.curve25519, ed25519: seen.ed25519 }, { curve25519: own.curve25519, ed25519: own.ed25519 });
    });

    test('js-sdk decrypts a message nio sends', async () => {
      const body = 'hello from nio (olm)';
      const sent = await nio.command('send', { room_id: roomId, body }, 'sent');
      const event = await eventually(
        () => decrypted(js, roomId).find((e) => e.getId() === sent.event_id),
        'js-sdk to decrypt the message from nio',
      );
      assert.equal(event.getSender(), nioUser);
      assert.equal(event.getContent().body, body);
      assert.equal(event.getContent().msgtype, 'm.text');
      assert.equal(event.getWireType(), 'm.room.encrypted');
      assert.equal(event.getWireContent().algorithm, MEGOLM);
      assert.equal(event.getWireContent().session_id, sent.session_id);

      // The server holds ciphertext only.
      const res = await fetch(
        `${server.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(String(sent.event_id))}`,
        {
          headers: { Authorization: `Bearer ${js.getAccessToken()}` },
        },
      );
      assert.equal(res.status, 200);
      const stored = (await res.json()) as { type: string; content: Record<string, unknown> };
      assert.equal(stored.type, 'm.room.encrypted');
      assert.equal(typeof stored.content.ciphertext, 'string');
      assert.ok(!JSON.stringify(stored).includes(body));
    });

    test('nio decrypts the reply js-sdk sends', async () => {
      const body = 'hello from js-sdk (rust crypto)';
      const { event_id: eventId } = await js.sendMessage(roomId, { msgtype: MsgType.Text, body });
      // nio gets the room key as an olm-encrypted to-device message in its sync, then decrypts.
      const received = await nio.command('receive', { room_id: roomId, sender: jsUser, body }, 'received');
      assert.equal(received.event_id, eventId);
      assert.equal(received.sender, jsUser);
      assert.equal(received.body, body);
      assert.equal(received.decrypted, true);

      // And the conversation carries on both ways with the sessions now in place.
      const again = await nio.command('send', { room_id: roomId, body: 'nio again' }, 'sent');
      await eventually(
        () => decrypted(js, roomId).find((e) => e.getId() === again.event_id && e.getContent().body === 'nio again'),
        'js-sdk to decrypt the second nio message',
      );
      await js.sendMessage(roomId, { msgtype: MsgType.Text, body: 'js again' });
      const second = await nio.command('receive', { room_id: roomId, sender: jsUser, body: 'js again' }, 'received');
      assert.equal(second.decrypted, true);
    });

    test('a js-sdk device logging in later: nio learns of it via device_lists in /sync; olm sessions start from either side', async () => {
      const login = await createClient({ baseUrl: server.baseUrl }).loginRequest({
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: 'jsuser' },
        password: 'pw-jsuser-secret',
      });
      const js2 = createClient({ baseUrl: server.baseUrl, userId: jsUser, accessToken: login.access_token, deviceId: login.device_id });
      extraClients.push(js2);
      await js2.initRustCrypto({ useIndexedDB: false });
      await js2.startClient({ initialSyncLimit: 30, pendingEventOrdering: PendingEventOrdering.Detached });
      await eventually(() => js2.getRoom(roomId)?.getMyMembership() === 'join', 'the new js-sdk device to see the room');

      // nio only syncs here: the new device must reach it as device_lists.changed.
      const own = await js2.getCrypto()!.getOwnDeviceKeys();
      const seen = await nio.command('devices', { user_id: jsUser, device_id: login.device_id, via_sync: true }, 'devices');
      assert.equal(seen.curve25519, own.curve25519);

      // The new device has no olm session with nio: it claims one of nio's one-time keys and nio
      // opens the session from the pre-key message that carries the room key.
      const fromNew = 'from the new js-sdk device';
      await js2.sendMessage(roomId, { msgtype: MsgType.Text, body: fromNew });
      const received = await nio.command('receive', { room_id: roomId, sender: jsUser, body: fromNew }, 'received');
      assert.equal(received.decrypted, true);

      // nio shares a new room key with both js-sdk devices, and both read its message.
      const toBoth = 'nio to both js-sdk devices';
      const sent = await nio.command('send', { room_id: roomId, body: toBoth }, 'sent');
      for (const client of [js, js2]) {
        await eventually(
          () => decrypted(client, roomId).find((e) => e.getId() === sent.event_id && e.getContent().body === toBoth),
          `${client.getDeviceId()} to decrypt nio's message`,
        );
      }
    });
  });
}
