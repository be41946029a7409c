// SQL lives in src/storage/ and nowhere else, and each table has one store that owns it.
//
// Every string literal and template of the sources is read with the TypeScript parser (comments
// never count) and matched against the shapes of SQL statements. Outside src/storage/ nothing may
// match. Inside, each table created by a migration (src/storage/schema/) must be written (INSERT,
// UPDATE, DELETE) by exactly one store file, its owner; another store may read it only where the
// exception is listed below with its reason. The PostgreSQL sequences are used by one store.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'src');
const storage = join(src, 'storage');

/** Reads of a table by a store that does not own it, each with its reason. */
const FOREIGN_READS: Record<string, Record<string, string>> = {
  'src/storage/user-directory-store.ts': {
    users: 'the user directory search is a read-only query over accounts, profiles and memberships; it owns no table',
    profiles: 'as above: display names and avatars of the users found',
    room_state: 'as above: who is joined to the rooms searched, and the rooms whose state makes their members public',
    events: 'as above: the join rules and history visibility events of those rooms',
  },
  'src/storage/device-keys-store.ts': {
    devices: 'device keys are served only for devices that still exist, with their display names (a JOIN)',
  },
  'src/storage/event-graph-store.ts': {
    events: "a graph row is read with its event's JSON and stream position (a JOIN): a timeline event keeps its JSON only in events",
  },
};

/** Files that build a statement's table or sequence name from a value; each must say which. */
const DYNAMIC_NAMES: Record<string, string> = {
  'src/storage/stream-sequences-store.ts': 'the sequence of the stream, from a fixed table of three names',
  'src/storage/event-graph-store.ts': 'the edge table, event_edges or event_auth_edges, chosen by its two callers in the file',
};

/** The shapes of SQL statements (upper-case keywords, as this code base writes SQL). */
const SQL_SHAPES: readonly RegExp[] = [
  /\bSELECT\s[\s\S]*\bFROM\s/,
  /\bSELECT\s+(?:1|\d+|\*|[a-z_]+\s*\()/,
  /\bINSERT\s+INTO\s/,
  /\bUPDATE\s+\S+\s+SET\s/,
  /\bDELETE\s+FROM\s/,
  /\b(?:CREATE|ALTER|DROP)\s+(?:TABLE|(?:UNIQUE\s+)?INDEX|SEQUENCE)\b/,
  /\bON\s+CONFLICT\b/,
  /\b(?:nextval|setval|currval)\s*\(/,
  /\bBEGIN\b\s*(?:;|$)|\bCOMMIT\b\s*(?:;|$)|\bROLLBACK\b\s*(?:;|$)/,
];

/** `${...}` in a template: stands for a value, never SQL text. */
const HOLE = '\u0001';

function sourceFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts')) found.push(path);
  }
  return found.sort();
}

/** Every string literal and template of a file, templates with their holes marked. */
function stringsOf(file: string): Array<{ text: string; line: number }> {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const strings: Array<{ text: string; line: number }> = [];
  const visit = (node: ts.Node): void => {
    const line = () => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) {
      strings.push({ text: node.text, line: line() });
    } else if (ts.isTemplateExpression(node)) {
      strings.push({ text: node.head.text + node.templateSpans.map((span) => HOLE + span.literal.text).join(''), line: line() });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return strings;
}

function looksLikeSql(text: string): boolean {
  return SQL_SHAPES.some((shape) => shape.test(text));
}

const rel = (file: string) => relative(root, file).split('\\').join('/');

describe('SQL only in src/storage', () => {
  test('no file outside src/storage/ has a string that is SQL', () => {
    const offences: string[] = [];
    for (const file of sourceFiles(src)) {
      if (file.startsWith(storage + '/')) continue;
      for (const { text, line } of stringsOf(file))
        if (looksLikeSql(text)) offences.push(`${rel(file)}:${line}: ${text.replaceAll(HOLE, '${…}').slice(0, 120)}`);
    }
    assert.deepEqual(offences, [], `SQL outside src/storage/ (move it into the store that owns the table):\n${offences.join('\n')}`);
  });

  test('the scan recognises the statements the stores write, and not route names or prose', () => {
    const storeSql = sourceFiles(storage).flatMap((file) => stringsOf(file).filter(({ text }) => looksLikeSql(text)));
    assert.ok(storeSql.length > 150, `only ${storeSql.length} SQL strings found in src/storage/: the scan is broken`);
    for (const sql of [
      'SELECT 1 AS one',
      'SELECT room_id FROM room_aliases WHERE room_alias = ?',
      'INSERT INTO room_aliases (room_alias) VALUES (?)',
      'UPDATE rooms SET is_public = ? WHERE room_id = ?',
      'DELETE FROM to_device_inbox WHERE stream_id <= ?',
      `SELECT nextval('events_stream_seq') AS v`,
      'CREATE TABLE t (a TEXT)',
    ]) {
      assert.ok(looksLikeSql(sql), sql);
    }
    for (const text of [
      'DELETE',
      'GET, HEAD, POST, PUT, DELETE, OPTIONS',
      'Select a device from the list',
      '/_matrix/client/v3/delete',
      'update the profile, then select',
    ]) {
      assert.ok(!looksLikeSql(text), text);
    }
  });
});

describe('one store per table', () => {
  const schemaSql = sourceFiles(join(storage, 'schema'))
    .flatMap((file) => stringsOf(file))
    .map(({ text }) => text)
    .join('\n');
  const tables = [...schemaSql.matchAll(/\bCREATE\s+TABLE\s+(\w+)/g)].map((m) => m[1]!);
  const sequences = [...schemaSql.matchAll(/\bCREATE\s+SEQUENCE\s+(\w+)/g)].map((m) => m[1]!);
  const stores = sourceFiles(storage).filter((file) => file.endsWith('-store.ts'));

  /** Tables (and holes) each store writes and reads. */
  const usage = new Map(
    stores.map((file) => {
      const writes = new Set<string>();
      const reads = new Set<string>();
      for (const { text } of stringsOf(file)) {
        if (!looksLikeSql(text)) continue;
        // \u0001 is HOLE, which stands for an interpolated part of the SQL.
        /* eslint-disable no-control-regex */
        for (const m of text.matchAll(/\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+|\u0001)/g)) writes.add(m[1]!);
        for (const m of text.matchAll(/\b(?:FROM|JOIN)\s+(\w+|\u0001)/g)) reads.add(m[1]!);
        /* eslint-enable no-control-regex */
      }
      return [
        rel(file),
        {
          writes,
          reads,
          text: stringsOf(file)
            .map((s) => s.text)
            .join('\n'),
        },
      ] as const;
    }),
  );

  test('the migrations create the tables this test knows how to find', () => {
    assert.ok(tables.length >= 30, `only ${tables.length} tables found in src/storage/schema/`);
    assert.ok(tables.includes('room_aliases') && tables.includes('events') && tables.includes('e2e_room_keys'));
    assert.deepEqual(sequences.sort(), ['device_lists_stream_seq', 'events_stream_seq', 'receipts_stream_seq', 'state_group_id_seq']);
  });

  test('every table is written by exactly one store, and read elsewhere only where listed', () => {
    const problems: string[] = [];
    const owners = new Map<string, string>();
    for (const table of tables) {
      const writers = [...usage].filter(([, u]) => u.writes.has(table)).map(([file]) => file);
      if (writers.length !== 1)
        problems.push(`${table}: written by ${writers.length === 0 ? 'no store' : writers.join(', ')} (one owner expected)`);
      else owners.set(table, writers[0]!);
    }
    for (const [file, { reads, writes }] of usage) {
      for (const table of reads) {
        if (!tables.includes(table) || owners.get(table) === file || writes.has(table)) continue;
        if (FOREIGN_READS[file]?.[table] === undefined) problems.push(`${file} reads ${table}, owned by ${owners.get(table) ?? 'nobody'}`);
      }
      const dynamic = reads.has(HOLE) || writes.has(HOLE);
      if (dynamic && DYNAMIC_NAMES[file] === undefined) problems.push(`${file} builds a table name from a value: write the table out`);
    }
    for (const [file, listed] of Object.entries(FOREIGN_READS)) {
      for (const table of Object.keys(listed))
        if (!usage.get(file)?.reads.has(table)) problems.push(`${file}: listed exception for ${table} is no longer needed`);
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  test('the stream sequences are used by one store, and the state group ids by the state groups store', () => {
    const usersOf = (names: string[]) => [...usage].filter(([, u]) => names.some((name) => u.text.includes(name))).map(([file]) => file);
    assert.deepEqual(usersOf(sequences.filter((name) => name.endsWith('_stream_seq'))), ['src/storage/stream-sequences-store.ts']);
    assert.deepEqual(usersOf(['state_group_id_seq']), ['src/storage/state-groups-store.ts']);
  });
});
