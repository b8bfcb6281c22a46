import type { ProtocolOptions } from '@tcpcopy/core';

/**
 * `--protocol-opt` options of the HTTP protocol, validated once: every
 * problem is thrown from createProtocol() with the option in the message, so
 * a replay never starts with rules that cannot work.
 */

/** Payload bytes of each target reply we ask intercept for (see README: GRO/GSO packets reach 64 KB). */
export const DEFAULT_REPLY_BYTES = 65000;
const MIN_REPLY_BYTES = 512;
const MAX_REPLY_BYTES = 65000;

export interface SetHeaderRule {
  /** As the user wrote it (that spelling goes to the target). */
  readonly name: string;
  readonly lower: string;
  /** Lower-case name bytes, for matching raw header lines without making strings. */
  readonly lowerBytes: Buffer;
  readonly value: string;
  /** `Name: value\r\n`, ready to copy into a head. */
  readonly line: Buffer;
}

export interface RemoveHeaderRule {
  readonly lower: string;
  readonly lowerBytes: Buffer;
}

export interface HeaderFilter {
  readonly lower: string;
  readonly re: RegExp;
}

export interface HttpRules {
  readonly setHeaders: readonly SetHeaderRule[];
  readonly removeHeaders: readonly RemoveHeaderRule[];
  /** Upper-case method names, or null for all. */
  readonly allowMethods: ReadonlySet<string> | null;
  readonly allowUrl: readonly RegExp[];
  readonly denyUrl: readonly RegExp[];
  readonly allowHeader: readonly HeaderFilter[];
  readonly denyHeader: readonly HeaderFilter[];
  readonly replyBytes: number;
  /** Some rule rewrites the head (its bytes change). */
  readonly rewrites: boolean;
  /** Some rule may drop a request. */
  readonly filters: boolean;
}

export class HttpOptionError extends Error {
  override name = 'HttpOptionError';
}

const KNOWN = [
  'set-header',
  'remove-header',
  'allow-method',
  'allow-url',
  'deny-url',
  'allow-header',
  'deny-header',
  'reply-bytes',
] as const;

/** RFC 9110 token characters (header names, methods). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Field values: visible characters, spaces, tabs and obs-text; no CR, LF or other controls. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Headers that frame the body: rewriting them would desynchronise the target from the bytes we forward. */
const FRAMING = new Set(['content-length', 'transfer-encoding']);

function values(raw: string): string[] {
  return raw.split('\n').map((v) => v.replace(/\r$/, ''));
}

function splitNameValue(key: string, v: string, what: string): [string, string] {
  const colon = v.indexOf(':');
  if (colon <= 0) throw new HttpOptionError(`${key}=${v}: expected "Name: ${what}"`);
  const name = v.slice(0, colon).trim();
  if (!TOKEN.test(name)) throw new HttpOptionError(`${key}=${v}: "${name}" is not a valid header name`);
  return [name, v.slice(colon + 1).replace(/^[ \t]+/, '')];
}

function regex(key: string, src: string): RegExp {
  if (src === '') throw new HttpOptionError(`${key}: empty regular expression`);
  try {
    return new RegExp(src);
  } catch (err) {
    throw new HttpOptionError(`${key}=${src}: not a valid regular expression (${(err as Error).message})`);
  }
}

function headerName(key: string, v: string): string {
  const lower = v.toLowerCase();
  if (FRAMING.has(lower)) {
    throw new HttpOptionError(`${key}: ${v} cannot be changed: it frames the body, which is forwarded as captured`);
  }
  return lower;
}

export function parseOptions(options: ProtocolOptions): HttpRules {
  for (const key of Object.keys(options)) {
    if (!(KNOWN as readonly string[]).includes(key)) {
      throw new HttpOptionError(`unknown option "${key}" (known: ${KNOWN.join(', ')})`);
    }
  }
  const list = (key: string) => (options[key] === undefined ? [] : values(options[key]));

  const setHeaders: SetHeaderRule[] = [];
  for (const v of list('set-header')) {
    const [name, value] = splitNameValue('set-header', v, 'value');
    const trimmed = value.replace(/[ \t]+$/, '');
    if (!FIELD_VALUE.test(trimmed)) throw new HttpOptionError(`set-header=${v}: the value holds control characters`);
    const lower = headerName('set-header', name);
    if (setHeaders.some((r) => r.lower === lower)) throw new HttpOptionError(`set-header: ${name} is set twice`);
    setHeaders.push({
      name,
      lower,
      lowerBytes: Buffer.from(lower, 'latin1'),
      value: trimmed,
      line: Buffer.from(`${name}: ${trimmed}\r\n`, 'latin1'),
    });
  }

  const removeHeaders: RemoveHeaderRule[] = [];
  for (const v of list('remove-header')) {
    const name = v.trim();
    if (!TOKEN.test(name)) throw new HttpOptionError(`remove-header=${v}: "${name}" is not a valid header name`);
    const lower = headerName('remove-header', name);
    if (setHeaders.some((r) => r.lower === lower)) throw new HttpOptionError(`remove-header=${v}: that header is also given to set-header`);
    if (!removeHeaders.some((r) => r.lower === lower)) removeHeaders.push({ lower, lowerBytes: Buffer.from(lower, 'latin1') });
  }

  let allowMethods: Set<string> | null = null;
  if (options['allow-method'] !== undefined) {
    allowMethods = new Set();
    for (const m of options['allow-method'].split(/[,\n]/)) {
      const method = m.trim().toUpperCase();
      if (method === '') continue;
      if (!TOKEN.test(method)) throw new HttpOptionError(`allow-method: "${m.trim()}" is not a method name`);
      allowMethods.add(method);
    }
    if (allowMethods.size === 0) throw new HttpOptionError('allow-method: no method given (e.g. allow-method=GET,HEAD)');
  }

  const headerFilters = (key: string): HeaderFilter[] =>
    list(key).map((v) => {
      const [name, src] = splitNameValue(key, v, 'regex');
      return { lower: name.toLowerCase(), re: regex(`${key} ${name}`, src) };
    });

  let replyBytes = DEFAULT_REPLY_BYTES;
  if (options['reply-bytes'] !== undefined) {
    const v = options['reply-bytes'].trim();
    replyBytes = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!(replyBytes >= MIN_REPLY_BYTES && replyBytes <= MAX_REPLY_BYTES)) {
      throw new HttpOptionError(`reply-bytes=${v}: expected a whole number from ${MIN_REPLY_BYTES} to ${MAX_REPLY_BYTES}`);
    }
  }

  const rules = {
    setHeaders,
    removeHeaders,
    allowMethods,
    allowUrl: list('allow-url').map((v) => regex('allow-url', v)),
    denyUrl: list('deny-url').map((v) => regex('deny-url', v)),
    allowHeader: headerFilters('allow-header'),
    denyHeader: headerFilters('deny-header'),
    replyBytes,
  };
  return {
    ...rules,
    rewrites: setHeaders.length + removeHeaders.length > 0,
    filters: allowMethods !== null || rules.allowUrl.length + rules.denyUrl.length + rules.allowHeader.length + rules.denyHeader.length > 0,
  };
}
