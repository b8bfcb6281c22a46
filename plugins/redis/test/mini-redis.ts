// A tiny Redis for engine-level tests: enough commands to build a keyspace (strings, counters, lists),
// requirepass with per-connection login, SELECT, MULTI/EXEC, RESP2 replies. Written independently of
// the plugin's parsers so the tests do not check the plugin against itself.
import type { Responder, SimConnection } from '@tcpcopy/core/compliance';

type Value = string | string[];

interface Conn {
  buf: Buffer;
  authed: boolean;
  db: number;
  queue: string[][] | null;
  /** Commands executed on this connection, in order. */
  commands: string[][];
  /** Per command: reply bytes this connection had sent before it, and those the client had received when it arrived. */
  sentBefore: number[];
  receivedBefore: number[];
  sent: number;
}

const bulk = (s: string | null) => (s === null ? '$-1\r\n' : `$${Buffer.byteLength(s, 'latin1')}\r\n${s}\r\n`);

export class MiniRedis {
  readonly dbs = new Map<number, Map<string, Value>>();
  /** Every connection's state, in the order they were opened. */
  readonly conns: Conn[] = [];
  private readonly byKey = new Map<SimConnection | string, Conn>();

  constructor(private readonly password?: string) {}

  private db(n: number): Map<string, Value> {
    let m = this.dbs.get(n);
    if (!m) this.dbs.set(n, (m = new Map()));
    return m;
  }

  /** A connection's state; `key` is any object or string that stands for the connection. */
  conn(key: SimConnection | string): Conn {
    let c = this.byKey.get(key);
    if (!c) {
      c = { buf: Buffer.alloc(0), authed: this.password === undefined, db: 0, queue: null, commands: [], sentBefore: [], receivedBefore: [], sent: 0 };
      this.byKey.set(key, c);
      this.conns.push(c);
    }
    return c;
  }

  /**
   * Bytes from a client; returns the replies to send, one per complete command. `received`: reply
   * bytes the client side has been handed so far (to tell whether a command came before its answers).
   */
  feed(c: Conn, data: Buffer, received = 0): string[] {
    c.buf = Buffer.concat([c.buf, data]);
    const out: string[] = [];
    for (;;) {
      const parsed = parseCommand(c.buf);
      if (!parsed) break;
      c.buf = c.buf.subarray(parsed.end);
      if (parsed.args.length === 0) continue;
      c.sentBefore.push(c.sent);
      c.receivedBefore.push(received);
      c.commands.push(parsed.args);
      const reply = this.execute(c, parsed.args);
      c.sent += Buffer.byteLength(reply, 'latin1');
      out.push(reply);
    }
    return out;
  }

  /** The SimTarget responder; `received(key)` tells the reply bytes the engine got for a client address. */
  responder(received: (key: string) => number = () => 0): Responder {
    return { onData: (sc, data) => this.feed(this.conn(sc), data, received(sc.key)).map((r) => Buffer.from(r, 'latin1')) };
  }

  /** The keyspace as a stable string, for comparisons. */
  dump(): string {
    const dbs = [...this.dbs.entries()].filter(([, m]) => m.size > 0).sort((a, b) => a[0] - b[0]);
    return JSON.stringify(dbs.map(([n, m]) => [n, [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))]));
  }

  private execute(c: Conn, args: string[]): string {
    const name = args[0].toUpperCase();
    if (name === 'AUTH') {
      const pw = args[args.length - 1];
      if (args.length < 2 || args.length > 3) return "-ERR wrong number of arguments for 'auth' command\r\n";
      if (this.password === undefined) return '-ERR AUTH <password> called without any password configured for the default user.\r\n';
      if (pw !== this.password || (args.length === 3 && args[1] !== 'default')) return '-WRONGPASS invalid username-password pair or user is disabled.\r\n';
      c.authed = true;
      return '+OK\r\n';
    }
    if (!c.authed) return '-NOAUTH Authentication required.\r\n';
    if (c.queue && name !== 'EXEC') {
      c.queue.push(args);
      return '+QUEUED\r\n';
    }
    const db = this.db(c.db);
    switch (name) {
      case 'PING':
        return '+PONG\r\n';
      case 'SELECT':
        c.db = Number(args[1]);
        return '+OK\r\n';
      case 'MULTI':
        c.queue = [];
        return '+OK\r\n';
      case 'EXEC': {
        const q = c.queue ?? [];
        c.queue = null;
        return `*${q.length}\r\n${q.map((a) => this.execute(c, a)).join('')}`;
      }
      case 'SET':
        db.set(args[1], args[2]);
        return '+OK\r\n';
      case 'GET': {
        const v = db.get(args[1]);
        return Array.isArray(v) ? '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n' : bulk(v ?? null);
      }
      case 'INCR': {
        const n = Number(db.get(args[1]) ?? '0') + 1;
        db.set(args[1], String(n));
        return `:${n}\r\n`;
      }
      case 'RPUSH': {
        const l = (db.get(args[1]) as string[] | undefined) ?? [];
        l.push(...args.slice(2));
        db.set(args[1], l);
        return `:${l.length}\r\n`;
      }
      case 'LRANGE': {
        const l = (db.get(args[1]) as string[] | undefined) ?? [];
        return `*${l.length}\r\n${l.map((e) => bulk(e)).join('')}`;
      }
      default:
        return `-ERR unknown command '${args[0]}'\r\n`;
    }
  }
}

/** One complete command from the front of `b` (multibulk or inline), or null when incomplete. */
function parseCommand(b: Buffer): { args: string[]; end: number } | null {
  if (b.length === 0) return null;
  const line = (from: number) => {
    const nl = b.indexOf('\r\n', from);
    return nl < 0 ? null : { text: b.toString('latin1', from, nl), next: nl + 2 };
  };
  if (b[0] !== 0x2a) {
    const nl = b.indexOf('\n');
    if (nl < 0) return null;
    return { args: b.toString('latin1', 0, nl).replace(/\r$/, '').split(' ').filter(Boolean), end: nl + 1 };
  }
  const head = line(1);
  if (!head) return null;
  const args: string[] = [];
  let pos = head.next;
  for (let i = 0; i < Number(head.text); i++) {
    const len = line(pos + 1);
    if (!len) return null;
    const n = Number(len.text);
    if (b.length < len.next + n + 2) return null;
    args.push(b.toString('latin1', len.next, len.next + n));
    pos = len.next + n + 2;
  }
  return { args, end: pos };
}
