// The replication commands: one line of text each, `<NAME> <arguments>`, as Synapse's TCP
// replication protocol names and shapes them (docs/tcp_replication.md). Over Redis each command is
// one pub/sub message. Fields that are single words must not contain whitespace; JSON fields come
// last on a line so they may contain spaces (JSON never contains a raw newline).
//
// The commands every process may send and receive through any bus (`BusCommand`: USER_SYNC,
// USER_IP, INVALIDATE_TOKENS, ...) are part of the bus contract, in `streams/bus.ts`; the ones
// here only exist on the wire (NAME, REPLICATE, POSITION, RDATA, PING).

import type { BusCommand } from '../streams/bus.js';

/** `NAME <instance>`: who is speaking (a label only; Redis has no per-sender connection). */
export interface NameCommand {
  name: 'NAME';
  instance: string;
}

/** `REPLICATE`: asks every instance to announce the positions of the streams it writes. */
export interface ReplicateCommand {
  name: 'REPLICATE';
}

/**
 * `POSITION <stream> <instance> <prev_token> <new_token>`: the instance's stream is complete up to
 * `newToken`, and it wrote no rows after `prevToken` (the last position it sent). A reader that has
 * seen less than `prevToken` missed rows and fetches them.
 */
export interface PositionCommand {
  name: 'POSITION';
  stream: string;
  instance: string;
  prevToken: number;
  newToken: number;
}

/**
 * `RDATA <stream> <instance> <token|batch> <row_json>`: one row of an update. Every row of an
 * update but the last carries `batch`; the last carries the update's position.
 */
export interface RdataCommand {
  name: 'RDATA';
  stream: string;
  instance: string;
  token: number | 'batch';
  row: unknown;
}

/** `PING <data>` (usually a timestamp). */
export interface PingCommand {
  name: 'PING';
  data: string;
}

export type ReplicationCommand = NameCommand | ReplicateCommand | PositionCommand | RdataCommand | PingCommand | BusCommand;

const BUS_COMMAND_NAMES: ReadonlySet<string> = new Set<BusCommand['name']>([
  'USER_SYNC',
  'CLEAR_USER_SYNC',
  'FEDERATION_ACK',
  'USER_IP',
  'REMOTE_SERVER_UP',
  'INVALIDATE_TOKENS',
]);

export function isBusCommand(command: ReplicationCommand): command is BusCommand {
  return BUS_COMMAND_NAMES.has(command.name);
}

/** A line that is not a well-formed command. */
export class CommandParseError extends Error {
  constructor(
    message: string,
    readonly line: string,
  ) {
    super(message);
    this.name = 'CommandParseError';
  }
}

/** A command whose fields cannot be written as one line (whitespace in a word, a bad number). */
export class CommandEncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandEncodeError';
  }
}

function word(value: string, field: string): string {
  if (value === '' || /\s/.test(value)) throw new CommandEncodeError(`${field} must be one non-empty word: ${JSON.stringify(value)}`);
  return value;
}

function integer(value: number, field: string): string {
  if (!Number.isSafeInteger(value)) throw new CommandEncodeError(`${field} must be an integer: ${value}`);
  return String(value);
}

function json(value: unknown, field: string): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new CommandEncodeError(`${field} cannot be written as JSON`);
  return text;
}

export function encodeCommand(command: ReplicationCommand): string {
  switch (command.name) {
    case 'NAME':
      return `NAME ${word(command.instance, 'instance')}`;
    case 'REPLICATE':
      return 'REPLICATE';
    case 'POSITION':
      return [
        'POSITION',
        word(command.stream, 'stream'),
        word(command.instance, 'instance'),
        integer(command.prevToken, 'prev_token'),
        integer(command.newToken, 'new_token'),
      ].join(' ');
    case 'RDATA':
      return [
        'RDATA',
        word(command.stream, 'stream'),
        word(command.instance, 'instance'),
        command.token === 'batch' ? 'batch' : integer(command.token, 'token'),
        json(command.row, 'row'),
      ].join(' ');
    case 'USER_SYNC':
      return [
        'USER_SYNC',
        word(command.instanceId, 'instance_id'),
        word(command.userId, 'user_id'),
        // Synapse writes a missing device as Python's `None`.
        command.deviceId === null ? 'None' : word(command.deviceId, 'device_id'),
        command.isSyncing ? 'start' : 'end',
        integer(command.lastSyncMs, 'last_sync_ms'),
      ].join(' ');
    case 'CLEAR_USER_SYNC':
      return `CLEAR_USER_SYNC ${word(command.instanceId, 'instance_id')}`;
    case 'FEDERATION_ACK':
      return `FEDERATION_ACK ${word(command.instance, 'instance')} ${integer(command.token, 'token')}`;
    case 'USER_IP': {
      integer(command.lastSeen, 'last_seen');
      const values = [command.accessToken, command.ip, command.userAgent, command.deviceId, command.lastSeen];
      return `USER_IP ${word(command.userId, 'user_id')} ${json(values, 'user_ip')}`;
    }
    case 'REMOTE_SERVER_UP':
      return `REMOTE_SERVER_UP ${word(command.server, 'server')}`;
    case 'INVALIDATE_TOKENS':
      return `INVALIDATE_TOKENS ${json(command.tokenHashes, 'token_hashes')}`;
    case 'PING':
      if (/[\r\n]/.test(command.data)) throw new CommandEncodeError('PING data must not contain a newline');
      return command.data === '' ? 'PING' : `PING ${command.data}`;
  }
}

/** Splits `rest` into exactly `count` fields; the last takes the remainder of the line. */
function fields(rest: string, count: number, line: string): string[] {
  const parts: string[] = [];
  let remaining = rest;
  for (let i = 0; i < count - 1; i++) {
    const space = remaining.indexOf(' ');
    if (space <= 0) throw new CommandParseError(`expected ${count} arguments`, line);
    parts.push(remaining.slice(0, space));
    remaining = remaining.slice(space + 1);
  }
  if (remaining === '') throw new CommandParseError(`expected ${count} arguments`, line);
  parts.push(remaining);
  return parts;
}

/** Exactly `count` single-word fields. */
function words(rest: string, count: number, line: string): string[] {
  const parts = rest === '' ? [] : rest.split(' ');
  if (parts.length !== count || parts.some((p) => p === '')) throw new CommandParseError(`expected ${count} arguments`, line);
  return parts;
}

function parseInteger(text: string, field: string, line: string): number {
  const value = /^-?\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) throw new CommandParseError(`${field} is not an integer: ${text}`, line);
  return value;
}

function parseJson(text: string, field: string, line: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new CommandParseError(`${field} is not valid JSON`, line);
  }
}

function nullableString(value: unknown): value is string | null {
  return value === null || typeof value === 'string';
}

/** Parses one line (a trailing newline and surrounding whitespace are ignored). */
export function decodeCommand(input: string): ReplicationCommand {
  const line = input.trim();
  if (line === '') throw new CommandParseError('empty line', input);
  const space = line.indexOf(' ');
  const name = space < 0 ? line : line.slice(0, space);
  const rest = space < 0 ? '' : line.slice(space + 1);
  switch (name) {
    case 'NAME': {
      const [instance] = words(rest, 1, line);
      return { name, instance: instance! };
    }
    case 'REPLICATE':
      return { name };
    case 'POSITION': {
      const [stream, instance, prev, next] = words(rest, 4, line);
      return {
        name,
        stream: stream!,
        instance: instance!,
        prevToken: parseInteger(prev!, 'prev_token', line),
        newToken: parseInteger(next!, 'new_token', line),
      };
    }
    case 'RDATA': {
      const [stream, instance, token, row] = fields(rest, 4, line);
      return {
        name,
        stream: stream!,
        instance: instance!,
        token: token === 'batch' ? 'batch' : parseInteger(token!, 'token', line),
        row: parseJson(row!, 'row', line),
      };
    }
    case 'USER_SYNC': {
      const [instanceId, userId, deviceId, state, lastSyncMs] = words(rest, 5, line);
      if (state !== 'start' && state !== 'end') throw new CommandParseError(`USER_SYNC state must be start or end: ${state}`, line);
      return {
        name,
        instanceId: instanceId!,
        userId: userId!,
        deviceId: deviceId === 'None' ? null : deviceId!,
        isSyncing: state === 'start',
        lastSyncMs: parseInteger(lastSyncMs!, 'last_sync_ms', line),
      };
    }
    case 'CLEAR_USER_SYNC': {
      const [instanceId] = words(rest, 1, line);
      return { name, instanceId: instanceId! };
    }
    case 'FEDERATION_ACK': {
      const [instance, token] = words(rest, 2, line);
      return { name, instance: instance!, token: parseInteger(token!, 'token', line) };
    }
    case 'INVALIDATE_TOKENS': {
      const value = parseJson(rest, 'token_hashes', line);
      if (!Array.isArray(value) || !value.every((h) => typeof h === 'string'))
        throw new CommandParseError('INVALIDATE_TOKENS expects a JSON array of strings', line);
      return { name, tokenHashes: value };
    }
    case 'USER_IP': {
      const [userId, body] = fields(rest, 2, line);
      const value = parseJson(body!, 'user_ip', line);
      if (!Array.isArray(value) || value.length !== 5) throw new CommandParseError('USER_IP expects a JSON array of 5 values', line);
      const [accessToken, ip, userAgent, deviceId, lastSeen] = value as unknown[];
      if (
        typeof accessToken !== 'string' ||
        typeof ip !== 'string' ||
        typeof userAgent !== 'string' ||
        !nullableString(deviceId) ||
        typeof lastSeen !== 'number' ||
        !Number.isSafeInteger(lastSeen)
      ) {
        throw new CommandParseError('USER_IP values have the wrong types', line);
      }
      return { name, userId: userId!, accessToken, ip, userAgent, deviceId, lastSeen };
    }
    case 'REMOTE_SERVER_UP': {
      const [server] = words(rest, 1, line);
      return { name, server: server! };
    }
    case 'PING':
      return { name, data: rest };
    default:
      throw new CommandParseError(`unknown command: ${name.slice(0, 40)}`, line);
  }
}
