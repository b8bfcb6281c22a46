/**
 * Numbers of the MySQL/MariaDB client/server protocol: capability flags, MariaDB's extended
 * capabilities, command codes, server status flags and the packet-level markers.
 *
 * Capabilities are 32-bit unsigned values: combine them with `|` and then `>>> 0`, because bit 31
 * makes a JavaScript bitwise result negative otherwise.
 */

/** Capability flags of the 4-byte capability field (HandshakeV10, HandshakeResponse41). */
export const Capability = {
  /** Called CLIENT_LONG_PASSWORD by MySQL. A MariaDB server or client leaves it unset, to say it
   * speaks MariaDB's extended capabilities (the 4 reserved bytes of the handshake). */
  CLIENT_MYSQL: 1 << 0,
  FOUND_ROWS: 1 << 1,
  LONG_FLAG: 1 << 2,
  CONNECT_WITH_DB: 1 << 3,
  NO_SCHEMA: 1 << 4,
  COMPRESS: 1 << 5,
  ODBC: 1 << 6,
  LOCAL_FILES: 1 << 7,
  IGNORE_SPACE: 1 << 8,
  PROTOCOL_41: 1 << 9,
  INTERACTIVE: 1 << 10,
  SSL: 1 << 11,
  IGNORE_SIGPIPE: 1 << 12,
  TRANSACTIONS: 1 << 13,
  RESERVED: 1 << 14,
  /** Called RESERVED2 by MySQL 8; it still governs the 1-byte auth-response length. */
  SECURE_CONNECTION: 1 << 15,
  MULTI_STATEMENTS: 1 << 16,
  MULTI_RESULTS: 1 << 17,
  PS_MULTI_RESULTS: 1 << 18,
  PLUGIN_AUTH: 1 << 19,
  CONNECT_ATTRS: 1 << 20,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 1 << 21,
  CAN_HANDLE_EXPIRED_PASSWORDS: 1 << 22,
  SESSION_TRACK: 1 << 23,
  DEPRECATE_EOF: 1 << 24,
  OPTIONAL_RESULTSET_METADATA: 1 << 25,
  ZSTD_COMPRESSION_ALGORITHM: 1 << 26,
  QUERY_ATTRIBUTES: 1 << 27,
  MULTI_FACTOR_AUTHENTICATION: 1 << 28,
  CAPABILITY_EXTENSION: 1 << 29,
  SSL_VERIFY_SERVER_CERT: 1 << 30,
  REMEMBER_OPTIONS: 2 ** 31,
} as const;

/** MariaDB's extended capabilities, bits 32..63 of its 64-bit capability set, given here shifted
 * down by 32 as they travel in the handshake's 4 reserved bytes. Only meaningful when the peer
 * left {@link Capability.CLIENT_MYSQL} unset. */
export const MariaDbCapability = {
  PROGRESS: 1 << 0,
  COM_MULTI: 1 << 1,
  STMT_BULK_OPERATIONS: 1 << 2,
  EXTENDED_TYPE_INFO: 1 << 3,
  CACHE_METADATA: 1 << 4,
  BULK_UNIT_RESULTS: 1 << 5,
} as const;

/** Command codes: the first payload byte of a client packet in the command phase. */
export const Command = {
  COM_SLEEP: 0x00,
  COM_QUIT: 0x01,
  COM_INIT_DB: 0x02,
  COM_QUERY: 0x03,
  COM_FIELD_LIST: 0x04,
  COM_CREATE_DB: 0x05,
  COM_DROP_DB: 0x06,
  COM_REFRESH: 0x07,
  COM_SHUTDOWN: 0x08,
  COM_STATISTICS: 0x09,
  COM_PROCESS_INFO: 0x0a,
  COM_CONNECT: 0x0b,
  COM_PROCESS_KILL: 0x0c,
  COM_DEBUG: 0x0d,
  COM_PING: 0x0e,
  COM_TIME: 0x0f,
  COM_DELAYED_INSERT: 0x10,
  COM_CHANGE_USER: 0x11,
  COM_BINLOG_DUMP: 0x12,
  COM_TABLE_DUMP: 0x13,
  COM_CONNECT_OUT: 0x14,
  COM_REGISTER_SLAVE: 0x15,
  COM_STMT_PREPARE: 0x16,
  COM_STMT_EXECUTE: 0x17,
  COM_STMT_SEND_LONG_DATA: 0x18,
  COM_STMT_CLOSE: 0x19,
  COM_STMT_RESET: 0x1a,
  COM_SET_OPTION: 0x1b,
  COM_STMT_FETCH: 0x1c,
  COM_DAEMON: 0x1d,
  COM_BINLOG_DUMP_GTID: 0x1e,
  COM_RESET_CONNECTION: 0x1f,
  /** MariaDB only (MARIADB_CLIENT_STMT_BULK_OPERATIONS). */
  COM_STMT_BULK_EXECUTE: 0xfa,
} as const;

/** Server status flags of OK and EOF packets. */
export const ServerStatus = {
  IN_TRANS: 0x0001,
  AUTOCOMMIT: 0x0002,
  MORE_RESULTS_EXISTS: 0x0008,
  NO_GOOD_INDEX_USED: 0x0010,
  NO_INDEX_USED: 0x0020,
  CURSOR_EXISTS: 0x0040,
  LAST_ROW_SENT: 0x0080,
  DB_DROPPED: 0x0100,
  NO_BACKSLASH_ESCAPES: 0x0200,
  METADATA_CHANGED: 0x0400,
  QUERY_WAS_SLOW: 0x0800,
  PS_OUT_PARAMS: 0x1000,
  IN_TRANS_READONLY: 0x2000,
  SESSION_STATE_CHANGED: 0x4000,
} as const;

/** First payload byte of the server's generic packets. */
export const Marker = {
  OK: 0x00,
  AUTH_MORE_DATA: 0x01,
  HANDSHAKE_V10: 0x0a,
  LOCAL_INFILE: 0xfb,
  /** EOF when the payload is shorter than 9 bytes; also the auth switch request, and the OK that
   * ends a result set under CLIENT_DEPRECATE_EOF. */
  EOF: 0xfe,
  ERR: 0xff,
} as const;

/** Largest payload of one physical packet; a packet this long is continued by the next one. */
export const MAX_PACKET_PAYLOAD = 0xffffff;

/** Error code of MariaDB's progress report, sent as an ERR-shaped packet during a long command
 * when the client asked for MARIADB_CLIENT_PROGRESS: it never ends the command. */
export const PROGRESS_REPORT_CODE = 0xffff;

/** COM_STMT_EXECUTE flags byte: a cursor was asked for. */
export const CursorType = {
  NO_CURSOR: 0,
  READ_ONLY: 1,
  FOR_UPDATE: 2,
  SCROLLABLE: 4,
} as const;

/** Whether `flag` is set in a 32-bit capability set (safe for bit 31). */
export function hasCapability(capabilities: number, flag: number): boolean {
  return ((capabilities & flag) >>> 0) !== 0;
}
