import * as path from 'node:path';
import type { ProtocolOptions, SessionProtocol, SessionProtocolFactory } from './session-protocol';

/** Short protocol names and the module each stands for, as `{ http: '@tcpcopy/protocol-http' }`. */
export type ProtocolNames = Readonly<Record<string, string>>;

/** Where loadProtocol looks. */
export interface LoadProtocolOptions {
  /** The directory that paths and package names are resolved from. Default: the current directory. */
  from?: string;
  /**
   * Short names that stand for modules (the tcpcopy command gives raw, http and mysql). A name
   * found here is loaded as its module; anything else is a path or a package name.
   */
  builtIns?: ProtocolNames;
}

export class ProtocolLoadError extends Error {
  override name = 'ProtocolLoadError';
}

/** The names in `builtIns` whose module can be found from `from`. */
export function installedProtocols(builtIns: ProtocolNames, from = process.cwd()): string[] {
  return Object.entries(builtIns)
    .filter(([, id]) => {
      try {
        require.resolve(id, { paths: [from, __dirname] });
        return true;
      } catch {
        return false;
      }
    })
    .map(([name]) => name);
}

export function isSessionProtocol(value: unknown): value is SessionProtocol {
  const v = value as SessionProtocol | null;
  return !!v && typeof v === 'object' && typeof v.name === 'string' && typeof v.createSession === 'function' &&
    typeof v.replyPayloadBytes === 'number';
}

/**
 * Loads a protocol by short name (one of `where.builtIns`), file path, or npm
 * package name. The module exports a SessionProtocol (as `default`,
 * `protocol` or its only export), or a SessionProtocolFactory
 * `createProtocol(options)` that takes the `--protocol-opt` options.
 *
 * @throws ProtocolLoadError with a one-line explanation when the module cannot
 *   be found or loaded, exports no protocol, or rejects its options.
 */
export function loadProtocol(spec: string, options: ProtocolOptions = {}, where: LoadProtocolOptions = {}): SessionProtocol {
  const from = where.from ?? process.cwd();
  const builtIns = where.builtIns ?? {};
  const builtIn = Object.hasOwn(builtIns, spec);
  const id = builtIn ? builtIns[spec] : spec;
  const isPath = id.startsWith('.') || id.startsWith('/');
  const request = isPath ? path.resolve(from, id) : id;
  let mod: Record<string, unknown>;
  try {
    const resolved = require.resolve(request, { paths: [from, __dirname] });
    mod = require(resolved) as Record<string, unknown>;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(request)) {
      const hint = builtIn
        ? `its package ${id} is not installed`
        : isPath
          ? `no such file`
          : `install it with \`npm install ${id}\` or give a path`;
      const available = installedProtocols(builtIns, from);
      throw new ProtocolLoadError(`cannot load protocol "${spec}": ${hint}${available.length ? ` (available: ${available.join(', ')})` : ''}`);
    }
    throw new ProtocolLoadError(`cannot load protocol "${spec}": loading ${request} failed: ${e.message}`);
  }
  const factory = [mod.createProtocol, mod.default].find((f): f is SessionProtocolFactory => typeof f === 'function');
  if (factory) {
    let made: unknown;
    try {
      made = factory(options);
    } catch (err) {
      throw new ProtocolLoadError(`protocol "${spec}" rejected its options: ${(err as Error).message}`);
    }
    if (!isSessionProtocol(made)) throw new ProtocolLoadError(`"${spec}": createProtocol() did not return a SessionProtocol`);
    return made;
  }
  const found = [mod.default, mod.protocol, ...Object.values(mod)].find(isSessionProtocol);
  if (!found) {
    throw new ProtocolLoadError(
      `"${spec}" does not export a SessionProtocol (an object with name, replyPayloadBytes and createSession()) or createProtocol(options); export one of them`,
    );
  }
  if (Object.keys(options).length > 0) {
    throw new ProtocolLoadError(`protocol "${spec}" takes no options (got ${Object.keys(options).join(', ')})`);
  }
  return found;
}

/**
 * Parses `--protocol-opt key=value` values and a JSON config file into one
 * options object: the pairs add to the file, and a key given several times
 * (or an array in the file) has its values joined with newlines.
 *
 * @throws ProtocolLoadError when a pair has no `=` or the file is not a JSON object.
 */
export function parseProtocolOptions(pairs: readonly string[], configFile?: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (configFile) {
    let json: unknown;
    try {
      json = JSON.parse(require('node:fs').readFileSync(configFile, 'utf8'));
    } catch (err) {
      throw new ProtocolLoadError(`--protocol-config ${configFile}: ${(err as Error).message}`);
    }
    if (!json || typeof json !== 'object' || Array.isArray(json)) {
      throw new ProtocolLoadError(`--protocol-config ${configFile}: expected a JSON object of option names to values`);
    }
    for (const [k, v] of Object.entries(json)) out[k] = Array.isArray(v) ? v.map(String).join('\n') : String(v);
  }
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ProtocolLoadError(`--protocol-opt ${pair}: expected key=value`);
    const key = pair.slice(0, eq);
    // A repeated key collects its values, one per line (e.g. several header rules).
    out[key] = key in out ? `${out[key]}\n${pair.slice(eq + 1)}` : pair.slice(eq + 1);
  }
  return out;
}
