// A tiny real DNS server on a loopback UDP port, for tests of server discovery: it answers A,
// AAAA and SRV questions from a table the test sets (and may change), NXDOMAIN for names it does
// not know and an empty answer for a known name without records of the asked type. Point a
// resolver at it with `dns.Resolver#setServers([server.address])`. RFC 1035 §4 message format.

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

export interface SrvAnswer {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

export interface DnsRecords {
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  srv?: Record<string, SrvAnswer[]>;
}

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, for `setServers`. */
  readonly address: string;
  records: DnsRecords;
  /** The questions asked so far, as `TYPE name`. */
  readonly questions: string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;
const TYPE_SRV = 33;
const TYPE_NAMES: Record<number, string> = { [TYPE_A]: 'A', [TYPE_AAAA]: 'AAAA', [TYPE_SRV]: 'SRV' };

function encodeName(name: string): Buffer {
  const labels = name
    .replace(/\.$/, '')
    .split('.')
    .filter((l) => l !== '');
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])]);
}

function readQuestion(message: Buffer): { name: string; type: number; end: number } | undefined {
  let offset = 12;
  const labels: string[] = [];
  for (;;) {
    const length = message[offset];
    if (length === undefined) return undefined;
    offset++;
    if (length === 0) break;
    labels.push(message.subarray(offset, offset + length).toString('ascii'));
    offset += length;
  }
  if (offset + 4 > message.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: message.readUInt16BE(offset), end: offset + 4 };
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = [...headGroups, ...new Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function answer(type: number, rdata: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  header.writeUInt16BE(type, 2);
  header.writeUInt16BE(1, 4); // IN
  header.writeUInt32BE(60, 6); // TTL
  header.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([header, rdata]);
}

function respond(server: TestDnsServer, message: Buffer): Buffer | undefined {
  if (message.length < 12) return undefined;
  const question = readQuestion(message);
  if (!question) return undefined;
  server.questions.push(`${TYPE_NAMES[question.type] ?? question.type} ${question.name}`);
  const { a = {}, aaaa = {}, srv = {} } = server.records;
  const known = [a, aaaa, srv].some((table) => Object.hasOwn(table, question.name));
  const answers: Buffer[] = [];
  if (question.type === TYPE_A)
    for (const ip of a[question.name] ?? []) if (isIPv4(ip)) answers.push(answer(TYPE_A, Buffer.from(ip.split('.').map(Number))));
  if (question.type === TYPE_AAAA)
    for (const ip of aaaa[question.name] ?? []) if (isIPv6(ip)) answers.push(answer(TYPE_AAAA, ipv6Bytes(ip)));
  if (question.type === TYPE_SRV) {
    for (const record of srv[question.name] ?? []) {
      const fixed = Buffer.alloc(6);
      fixed.writeUInt16BE(record.priority, 0);
      fixed.writeUInt16BE(record.weight, 2);
      fixed.writeUInt16BE(record.port, 4);
      answers.push(answer(TYPE_SRV, Buffer.concat([fixed, encodeName(record.target)])));
    }
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(message.readUInt16BE(0), 0); // the query's id
  // QR, the query's RD, RA; NXDOMAIN for names it does not know.
  header.writeUInt16BE(0x8000 | (message.readUInt16BE(2) & 0x0100) | 0x0080 | (known ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, message.subarray(12, question.end), ...answers]);
}

export async function startDnsServer(records: DnsRecords = {}): Promise<TestDnsServer> {
  const socket: Socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  const server: TestDnsServer = {
    address: `127.0.0.1:${socket.address().port}`,
    records,
    questions: [],
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (message: Buffer, remote: RemoteInfo) => {
    const reply = respond(server, message);
    if (reply) socket.send(reply, remote.port, remote.address);
  });
  return server;
}
