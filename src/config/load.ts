// Reads homeserver.yaml, conf.d/*.yaml and worker files into one validated Config.
//
// Files are merged key by key at the top level, later files winning, as Synapse does with several
// `-c` options. Every problem is reported with the file that set the key, the key path, what was
// expected and what was found, and all problems are reported at once.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { checkRoles } from './roles.js';
import { configSchema, type ListenerConfig, type ValidatedConfig } from './schema.js';
import { ConfigOrigin, type Config, type DatabaseConfig } from './types.js';
import { formatKeyPath, isPlainObject, visitConfigValue, type KeyPath } from './walk.js';

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** Called once per unknown key; defaults to writing a warning to stderr. */
  warn?: (message: string) => void;
}

/**
 * Expands the `-c` arguments into the list of files to read: a directory means its `*.yaml`
 * files sorted by name; a single file also pulls in a sibling `conf.d/` directory, as Debian's
 * Synapse packaging does.
 */
export function expandConfigPaths(paths: readonly string[]): string[] {
  const files: string[] = [];
  const problems: string[] = [];
  for (const path of paths) {
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      problems.push(`${path}: the config file does not exist`);
      continue;
    }
    files.push(...(isDir ? yamlFilesIn(path) : [path]));
  }
  if (problems.length) throw new ConfigError(problems);
  const only = paths[0];
  if (paths.length === 1 && only !== undefined && !statSync(only).isDirectory()) {
    const confD = join(dirname(only), 'conf.d');
    if (existsSync(confD) && statSync(confD).isDirectory()) files.push(...yamlFilesIn(confD));
  }
  return files;
}

function yamlFilesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
    .sort()
    .map((name) => join(dir, name));
}

// YAML 1.2 reads `0660` as decimal; Synapse's YAML 1.1 parser (and every admin) reads it as octal.
const legacyOctalInt = {
  tag: 'tag:yaml.org,2002:int',
  test: /^0[0-7]+$/,
  resolve: (source: string) => parseInt(source, 8),
  identify: () => false,
  default: true,
};

export function parseYamlFile(file: string, text: string): Record<string, unknown> {
  const doc = YAML.parseDocument(text, {
    customTags: (tags) => [legacyOctalInt, ...tags],
    prettyErrors: true,
    uniqueKeys: true,
  });
  if (doc.errors.length) {
    throw new ConfigError(
      doc.errors.map(
        (e) =>
          `${file}: line ${e.linePos?.[0]?.line ?? '?'}: ` +
          `invalid YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      ),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (data === null || data === undefined) return {};
  if (!isPlainObject(data)) throw new ConfigError([`${file}: expected a mapping of config keys at the top level`]);
  return data;
}

export function loadConfig(paths: readonly string[], options: LoadOptions = {}): Config {
  const warn = options.warn ?? ((message: string) => process.stderr.write(`warning: ${message}\n`));
  const files = expandConfigPaths(paths);
  if (files.length === 0) throw new ConfigError([`${paths.join(', ')}: no config files found`]);

  const merged: Record<string, unknown> = {};
  const fileOfKey = new Map<string, string>();
  const problems: string[] = [];
  for (const file of files) {
    let data: Record<string, unknown>;
    try {
      data = parseYamlFile(file, readFileSync(file, 'utf8'));
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else problems.push(`${file}: cannot read the config file: ${(err as Error).message}`);
      continue;
    }
    // Relative paths are resolved per file, before merging, so each resolves against its own file.
    const resolved = visitConfigValue(configSchema, data, [], {
      onUnknownKey: (path) => warn(`${file}: ${formatKeyPath(path)}: unknown key (ignored)`),
      onMeta: (meta, value) => (meta.isPath && typeof value === 'string' && !isAbsolute(value) ? resolve(dirname(file), value) : value),
    }) as Record<string, unknown>;
    for (const [key, value] of Object.entries(resolved)) {
      merged[key] = value;
      fileOfKey.set(key, file);
    }
  }
  if (problems.length) throw new ConfigError(problems);

  const origin = new ConfigOrigin(files, fileOfKey);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => describeIssue(issue, merged, origin)));
  }
  const config = finish(result.data, origin, dirname(files[0]!));
  checkConfig(config, problems);
  if (problems.length) throw new ConfigError(problems);
  return config;
}

function finish(data: ValidatedConfig, origin: ConfigOrigin, firstDir: string): Config {
  const database: DatabaseConfig = data.database ?? {
    name: 'sqlite3',
    args: { database: join(firstDir, 'homeserver.db') },
  };
  if (database.name === 'sqlite3' && database.args.database && database.args.database !== ':memory:') {
    const file = database.args.database;
    if (!isAbsolute(file)) database.args.database = resolve(dirname(origin.fileOf(['database'])), file);
  }
  return {
    ...data,
    database,
    media_store_path: data.media_store_path ?? join(firstDir, 'media_store'),
    origin,
  };
}

/** Checks that need more than one key or the filesystem; problems are appended. */
function checkConfig(config: Config, problems: string[]): void {
  const checkListeners = (key: 'listeners' | 'worker_listeners', listeners: ListenerConfig[]) => {
    listeners.forEach((listener, i) => {
      if (listener.path !== undefined) {
        const dir = dirname(listener.path);
        if (!existsSync(dir)) {
          problems.push(
            `${config.origin.describe([key, i, 'path'])}: the directory ${dir} does not exist (create it before starting; the socket ` +
              `file itself is created at start-up)`,
          );
        }
      }
    });
  };
  checkListeners('listeners', config.listeners);
  checkListeners('worker_listeners', config.worker_listeners);

  const readSecret = (pathKey: 'registration_shared_secret_path' | 'worker_replication_secret_path') => {
    const file = config[pathKey];
    if (file === undefined) return undefined;
    try {
      const secret = readFileSync(file, 'utf8').trim();
      if (secret === '') problems.push(`${config.origin.describe([pathKey])}: ${file} is empty`);
      return secret;
    } catch (err) {
      problems.push(`${config.origin.describe([pathKey])}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
      return undefined;
    }
  };
  config.registration_shared_secret ??= readSecret('registration_shared_secret_path');
  config.worker_replication_secret ??= readSecret('worker_replication_secret_path');
  checkRoles(config, problems);
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown, origin: ConfigOrigin): string {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  const found = valueAt(input, path);
  const prefix = origin.describe(path);
  switch (issue.code) {
    case 'invalid_type':
      return found === undefined
        ? `${prefix}: required key is missing (expected ${article(issue.expected)})`
        : `${prefix}: expected ${article(issue.expected)}, got ${describeValue(found)}`;
    case 'invalid_value':
      return `${prefix}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(found)}`;
    case 'invalid_union':
      return `${prefix}: expected ${unionExpectation(issue)}, got ${describeValue(found)}`;
    case 'too_small':
    case 'too_big':
    case 'invalid_format':
      return `${prefix}: ${issue.message.replace(/^Invalid input: /, '').toLowerCase()}, got ${describeValue(found)}`;
    default:
      return `${prefix}: ${issue.message}`;
  }
}

function unionExpectation(issue: z.core.$ZodIssueInvalidUnion): string {
  const expected = issue.errors
    .flat()
    .filter((e): e is z.core.$ZodIssueInvalidType => e.code === 'invalid_type' && e.path.length === 0)
    .map((e) => article(e.expected));
  return expected.length ? expected.join(' or ') : 'a different value';
}

function article(type: string): string {
  const names: Record<string, string> = {
    string: 'a string',
    number: 'a number',
    int: 'an integer',
    boolean: 'a boolean (true or false)',
    array: 'a list',
    object: 'a mapping',
    record: 'a mapping',
  };
  return names[type] ?? type;
}

function valueAt(value: unknown, path: KeyPath): unknown {
  let current = value;
  for (const part of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[part];
  }
  return current;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return `a list (${JSON.stringify(value).slice(0, 60)})`;
  if (typeof value === 'object') return `a mapping (${JSON.stringify(value).slice(0, 60)})`;
  return JSON.stringify(value);
}

export function defaultConfigPath(cwd = process.cwd()): string {
  return join(cwd, 'data', 'homeserver.yaml');
}
