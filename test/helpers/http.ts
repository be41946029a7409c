// A small HTTP client for tests that reaches TCP ports and UNIX sockets alike.

import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';

export interface Target {
  /** `http://host:port` for TCP... */
  baseUrl?: string;
  /** ...or a UNIX socket path. */
  socketPath?: string;
}

export interface TestResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** A response's status, headers, text and (when the text is JSON) parsed body. */
export function readAnswer(res: IncomingMessage): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
    });
    res.on('error', reject);
  });
}

export function request(
  target: Target,
  method: string,
  path: string,
  options: { body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<TestResponse> {
  const url = target.baseUrl ? new URL(path, target.baseUrl) : undefined;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        method,
        path,
        ...(url ? { host: url.hostname, port: url.port } : { socketPath: target.socketPath }),
        headers: {
          ...(options.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(options.body)) } : {}),
          ...options.headers,
        },
        agent: false,
      },
      (res) => {
        readAnswer(res).then(resolve, reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

type PendingResponse = Promise<{ status: number; text: string; json: any }>;

/** Awaits a response that must be 200; returns its JSON body. */
export async function ok(res: PendingResponse): Promise<any> {
  const done = await res;
  assert.equal(done.status, 200, done.text);
  return done.json;
}

/** Awaits a response that must be a Matrix error with this status and errcode. */
export async function fails(res: PendingResponse, status: number, errcode: string): Promise<void> {
  const done = await res;
  assert.equal(done.status, status, done.text);
  assert.equal(done.json.errcode, errcode, done.text);
  assert.equal(typeof done.json.error, 'string');
}
