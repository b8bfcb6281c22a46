import { Capability, hasCapability, Marker, PROGRESS_REPORT_CODE } from './constants';
import { readLenencInt } from './lenenc';

/** OK_Packet, or the 0xFE-headed OK that ends a result set under CLIENT_DEPRECATE_EOF. */
export interface OkPacket {
  /** 0x00, or 0xFE. */
  header: number;
  affectedRows: number;
  lastInsertId: number;
  status: number;
  warnings: number;
}

export interface ErrPacket {
  code: number;
  /** The 5-character SQL state, or null when the packet has none (before PROTOCOL_41 is agreed). */
  sqlState: string | null;
  /** Decoded as UTF-8 and cut to the message limit. */
  message: string;
}

export interface EofPacket {
  warnings: number;
  status: number;
}

/** Default bound on the bytes of an error message kept by {@link parseErr}. */
export const DEFAULT_MAX_ERROR_MESSAGE = 512;

/** An EOF packet is 0xFE and shorter than 9 bytes (a longer 0xFE packet is a row or an OK). */
export function isEofPacket(payload: Buffer): boolean;
export function isEofPacket(firstByte: number, length: number): boolean;
export function isEofPacket(payloadOrFirstByte: Buffer | number, length?: number): boolean {
  if (typeof payloadOrFirstByte === 'number') return payloadOrFirstByte === Marker.EOF && (length ?? 0) < 9;
  return payloadOrFirstByte.length > 0 && payloadOrFirstByte[0] === Marker.EOF && payloadOrFirstByte.length < 9;
}

/**
 * Parses an OK packet (header 0x00, or 0xFE when it ends a result set under CLIENT_DEPRECATE_EOF):
 * affected rows and last insert id (length-encoded), then status and warnings (PROTOCOL_41) or
 * status alone (TRANSACTIONS). The info text and session-state changes after them are ignored.
 * Null when truncated or not an OK packet.
 */
export function parseOk(payload: Buffer, capabilities: number): OkPacket | null {
  if (payload.length < 1) return null;
  const header = payload[0];
  if (header !== Marker.OK && header !== Marker.EOF) return null;
  const affected = readLenencInt(payload, 1);
  if (affected.next < 0) return null;
  const insertId = readLenencInt(payload, affected.next);
  if (insertId.next < 0) return null;
  let at = insertId.next;
  let status = 0;
  let warnings = 0;
  if (hasCapability(capabilities, Capability.PROTOCOL_41)) {
    if (at + 4 > payload.length) return null;
    status = payload.readUInt16LE(at);
    warnings = payload.readUInt16LE(at + 2);
  } else if (hasCapability(capabilities, Capability.TRANSACTIONS)) {
    if (at + 2 > payload.length) return null;
    status = payload.readUInt16LE(at);
  }
  return { header, affectedRows: affected.value, lastInsertId: insertId.value, status, warnings };
}

/**
 * Parses an ERR packet: 0xFF, error code (2), then '#' and a 5-character SQL state when present,
 * then the message to the end (cut to `maxMessageBytes`). Null when truncated or not ERR.
 */
export function parseErr(payload: Buffer, maxMessageBytes = DEFAULT_MAX_ERROR_MESSAGE): ErrPacket | null {
  if (payload.length < 3 || payload[0] !== Marker.ERR) return null;
  const code = payload.readUInt16LE(1);
  let at = 3;
  let sqlState: string | null = null;
  if (payload.length >= 9 && payload[3] === 0x23 /* '#' */) {
    sqlState = payload.toString('latin1', 4, 9);
    at = 9;
  }
  const end = Math.min(payload.length, at + Math.max(0, maxMessageBytes));
  return { code, sqlState, message: payload.toString('utf8', at, end) };
}

/** MariaDB's progress report: ERR-shaped with code 0xFFFF; it does not end a command. */
export function isProgressReport(payload: Buffer): boolean {
  return payload.length >= 3 && payload[0] === Marker.ERR && payload.readUInt16LE(1) === PROGRESS_REPORT_CODE;
}

/**
 * Parses an EOF packet: 0xFE, warnings (2), status (2). A 1-byte EOF (before PROTOCOL_41) gives
 * zeros. Null when not an EOF packet or truncated.
 */
export function parseEof(payload: Buffer): EofPacket | null {
  if (!isEofPacket(payload)) return null;
  if (payload.length === 1) return { warnings: 0, status: 0 };
  if (payload.length < 5) return null;
  return { warnings: payload.readUInt16LE(1), status: payload.readUInt16LE(3) };
}
