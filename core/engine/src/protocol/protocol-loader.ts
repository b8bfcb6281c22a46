import * as path from 'node:path';
import type { SessionProtocol } from './session-protocol';

/** Protocol names that resolve to our own packages. */
export const BUILT_IN_PROTOCOLS: Record<string, string> = {
  raw: '@tcpcopy/protocol-raw',
  http: '@tcpcopy/protocol-http',
  mysql: '@tcpcopy/protocol-mysql',
};

export class ProtocolLoadError extends Error {
  override name = 'ProtocolLoadError';
}

/** Built-in protocol names whose package can be found from `from`. */
export function installedProtocols(from = process.cwd()): string[] {
  return Object.entries(BUILT_IN_PROTOCOLS)
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
 * Loads a protocol by built-in name, file path, or npm package name. The
 * module must export a SessionProtocol as `default`, as `protocol`, or as its
 * only export.
 */
export function loadProtocol(spec: string, from = process.cwd()): SessionProtocol {
  const id = BUILT_IN_PROTOCOLS[spec] ?? spec;
  const isPath = id.startsWith('.') || id.startsWith('/');
  const request = isPath ? path.resolve(from, id) : id;
  let mod: Record<string, unknown>;
  try {
    const resolved = require.resolve(request, { paths: [from, __dirname] });
    mod = require(resolved) as Record<string, unknown>;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(request)) {
      const hint = BUILT_IN_PROTOCOLS[spec]
        ? `its package ${id} is not installed`
        : isPath
          ? `no such file`
          : `install it with \`npm install ${id}\` or give a path`;
      throw new ProtocolLoadError(`cannot load protocol "${spec}": ${hint} (available: ${installedProtocols(from).join(', ')})`);
    }
    throw new ProtocolLoadError(`cannot load protocol "${spec}": loading ${request} failed: ${e.message}`);
  }
  const candidates = [mod.default, mod.protocol, ...Object.values(mod)];
  const found = candidates.find(isSessionProtocol);
  if (!found) {
    throw new ProtocolLoadError(
      `"${spec}" does not export a SessionProtocol (an object with name, replyPayloadBytes and createSession()); export one as default`,
    );
  }
  return found;
}
