/** Hand-built protocol packets (payloads) for the wire tests, laid out as the protocol pages say. */
import { encodeLenencBytes, encodeLenencInt } from '../src/wire/lenenc';
import { frame } from '../src/wire/handshake';

export const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const u16 = (value: number): Buffer => {
  const out = Buffer.alloc(2);
  out.writeUInt16LE(value, 0);
  return out;
};
const u32 = (value: number): Buffer => {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value >>> 0, 0);
  return out;
};
const str = (text: string): Buffer => encodeLenencBytes(Buffer.from(text, 'utf8'));

export interface OkFields {
  header?: number;
  affectedRows?: number;
  lastInsertId?: number;
  status?: number;
  warnings?: number;
  info?: string;
}

/** OK_Packet (PROTOCOL_41 layout), with an info string when given. */
export function ok(fields: OkFields = {}): Buffer {
  return Buffer.concat([
    Buffer.of(fields.header ?? 0x00),
    encodeLenencInt(fields.affectedRows ?? 0),
    encodeLenencInt(fields.lastInsertId ?? 0),
    u16(fields.status ?? 0x0002),
    u16(fields.warnings ?? 0),
    fields.info === undefined ? Buffer.alloc(0) : Buffer.from(fields.info),
  ]);
}

/** The OK with 0xFE header that ends a result set under CLIENT_DEPRECATE_EOF. */
export const okEof = (fields: OkFields = {}): Buffer => ok({ ...fields, header: 0xfe });

export function err(code: number, message: string, sqlState: string | null = 'HY000'): Buffer {
  return Buffer.concat([Buffer.of(0xff), u16(code), sqlState === null ? Buffer.alloc(0) : Buffer.from(`#${sqlState}`), Buffer.from(message)]);
}

export function eof(status = 0x0002, warnings = 0): Buffer {
  return Buffer.concat([Buffer.of(0xfe), u16(warnings), u16(status)]);
}

/** Column count, with the metadata flag byte (OPTIONAL_RESULTSET_METADATA / CACHE_METADATA) when given. */
export function columnCount(count: number, metadataFollows?: boolean): Buffer {
  const flag = metadataFollows === undefined ? Buffer.alloc(0) : Buffer.of(metadataFollows ? 1 : 0);
  return Buffer.concat([encodeLenencInt(count), flag]);
}

/** Column Definition 41: catalog 'def', schema, table, org table, name, org name, fixed fields. */
export function columnDef(name: string, type = 0xfd): Buffer {
  return Buffer.concat([
    str('def'),
    str('db'),
    str('t'),
    str('t'),
    str(name),
    str(name),
    Buffer.of(0x0c),
    u16(0x21),
    u32(80),
    Buffer.of(type),
    u16(0),
    Buffer.of(0),
    u16(0),
  ]);
}

/** Text resultset row: length-encoded strings, 0xFB for NULL. */
export function textRow(values: Array<string | Buffer | null>): Buffer {
  return Buffer.concat(
    values.map((v) => (v === null ? Buffer.of(0xfb) : encodeLenencBytes(typeof v === 'string' ? Buffer.from(v) : v))),
  );
}

/** Binary resultset row of INT columns: 0x00, NULL bitmap (offset 2), 4-byte values. */
export function binaryRow(values: Array<number | null>): Buffer {
  const bitmap = Buffer.alloc(Math.floor((values.length + 7 + 2) / 8));
  const cells: Buffer[] = [];
  values.forEach((v, i) => {
    if (v === null) bitmap[(i + 2) >> 3] |= 1 << ((i + 2) & 7);
    else cells.push(u32(v));
  });
  return Buffer.concat([Buffer.of(0x00), bitmap, ...cells]);
}

/** COM_STMT_PREPARE_OK, with the metadata flag byte when given. */
export function prepareOk(statementId: number, columns: number, params: number, warnings = 0, metadataFollows?: boolean): Buffer {
  return Buffer.concat([
    Buffer.of(0x00),
    u32(statementId),
    u16(columns),
    u16(params),
    Buffer.of(0),
    u16(warnings),
    metadataFollows === undefined ? Buffer.alloc(0) : Buffer.of(metadataFollows ? 1 : 0),
  ]);
}

/** Physical packets for payloads, numbered from `firstSeq`, each payload framed on its own. */
export function packets(firstSeq: number, payloads: Buffer[]): Buffer {
  const out: Buffer[] = [];
  let seq = firstSeq;
  for (const payload of payloads) {
    out.push(frame(seq, payload));
    seq += Math.floor(payload.length / 0xffffff) + 1;
  }
  return Buffer.concat(out);
}

/** Deterministic PRNG (mulberry32) for the tests that need arbitrary but repeatable bytes. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
