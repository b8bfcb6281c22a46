// The real tcpcopy (`--protocol mysql`) on a capture of MySQL client connections that are valid, cut short,
// corrupt or not MySQL at all, replayed across network namespaces (real intercept) to a minimal MySQL target
// that greets, answers every packet with OK and reports what it received. tcpcopy must exit 0 with no stack
// trace, replay the valid connections, send nothing of the bad ones past the point where they stop being MySQL,
// and count every bad one in its --summary json (protocol.streamsCorrupt, skippedTls, skippedCompressed).
import { LinkType, PcapWriter, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '@tcpcopy/core';
import { buildPacket } from '@tcpcopy/core/compliance';
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { createTopology, requireRoot, runTcpcopy, sleep, startIntercept, type ProcHandle, type TcpcopyRun, type Topology } from '../src/harness';

const PORT = 3306;
const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const ASSISTANT = '198.51.100.40';
const PASSWORD = 'pw';

// ---- MySQL packets -------------------------------------------------------------------------------

const CLIENT_LONG_PASSWORD = 1 << 0;
const CLIENT_COMPRESS = 1 << 5;
const CLIENT_PROTOCOL_41 = 1 << 9;
const CLIENT_SSL = 1 << 11;
const CLIENT_TRANSACTIONS = 1 << 13;
const CLIENT_SECURE_CONNECTION = 1 << 15;
const CLIENT_MULTI_RESULTS = 1 << 17;
const CLIENT_PLUGIN_AUTH = 1 << 19;
const CLIENT_PLUGIN_AUTH_LENENC = 1 << 21;
const CAPS = CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC;
const NATIVE = 'mysql_native_password';

function packet(seq: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, payload]);
}

const command = (cmd: number, body = ''): Buffer => packet(0, Buffer.concat([Buffer.from([cmd]), Buffer.from(body)]));
const query = (sql: string): Buffer => command(0x03, sql);

/** HandshakeV10 of a MySQL 8-like server (CLIENT_LONG_PASSWORD set: no MariaDB extensions). */
function greeting(scramble: Buffer): Buffer {
  const fixed = Buffer.alloc(4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10);
  fixed.writeUInt32LE(7, 0);
  scramble.copy(fixed, 4, 0, 8);
  fixed.writeUInt16LE(CAPS & 0xffff, 13);
  fixed[15] = 45;
  fixed.writeUInt16LE(2, 16);
  fixed.writeUInt16LE(CAPS >>> 16, 18);
  fixed[20] = 21;
  return packet(0, Buffer.concat([Buffer.from([10]), Buffer.from('8.0.36-fake\0'), fixed, scramble.subarray(8, 20), Buffer.from([0]), Buffer.from(`${NATIVE}\0`)]));
}

/** The mysql_native_password answer: SHA1(pw) XOR SHA1(scramble ‖ SHA1(SHA1(pw))). */
function nativeToken(password: string, scramble: Buffer): Buffer {
  const sha1 = (...b: Buffer[]) => createHash('sha1').update(Buffer.concat(b)).digest();
  const p1 = sha1(Buffer.from(password));
  const p3 = sha1(scramble, sha1(p1));
  return Buffer.from(p1.map((b, i) => b ^ p3[i]));
}

/** HandshakeResponse41 (sequence id 1). */
function login(user: string, caps = CAPS): Buffer {
  const fixed = Buffer.alloc(32);
  fixed.writeUInt32LE(caps >>> 0, 0);
  fixed.writeUInt32LE(16 * 1024 * 1024, 4);
  fixed[8] = 45;
  const token = nativeToken('online-secret', Buffer.from('online-scramble-0001'));
  return packet(1, Buffer.concat([fixed, Buffer.from(`${user}\0`), Buffer.from([token.length]), token, Buffer.from(`${NATIVE}\0`)]));
}

/** An SSLRequest: the 32-byte fixed part with CLIENT_SSL. */
function sslRequest(): Buffer {
  const fixed = Buffer.alloc(32);
  fixed.writeUInt32LE((CAPS | CLIENT_SSL) >>> 0, 0);
  fixed.writeUInt32LE(16 * 1024 * 1024, 4);
  fixed[8] = 45;
  return packet(1, fixed);
}

const OK_LENGTH = 11; // what the online server answered each request with (an OK packet)
const GREETING_LENGTH = greeting(Buffer.alloc(20)).length;

// ---- the capture -------------------------------------------------------------------------------------

/** One captured client connection: its requests, each with the bytes the online server answered it with. */
interface Connection {
  name: string;
  requests: Array<{ data: Buffer; response: number }>;
}

/** Client→server packets of a connection as tcpdump saves them: SYN, ACK of the greeting, each request (segments of `mss`), FIN. */
function capturedPackets(c: Connection, index: number, mss = 1448): Buffer[] {
  const base = { src: `192.0.2.${10 + index}`, sport: 41000 + index, dst: ONLINE, dport: PORT };
  let seq = 1_000_000 * (index + 1);
  let ack = 5_000_000 * (index + 1) + 1;
  const out = [buildPacket({ ...base, seq, flags: TCP_SYN })];
  seq++;
  out.push(buildPacket({ ...base, seq, ack, flags: TCP_ACK }));
  ack += GREETING_LENGTH;
  for (const r of c.requests) {
    for (let off = 0; off < r.data.length; off += mss) {
      out.push(buildPacket({ ...base, seq: seq + off, ack, flags: TCP_ACK | TCP_PSH, payload: r.data.subarray(off, off + mss) }));
    }
    seq += r.data.length;
    ack += r.response;
  }
  out.push(buildPacket({ ...base, seq, ack, flags: TCP_ACK | TCP_FIN }));
  return out;
}

const ok = (data: Buffer) => ({ data, response: OK_LENGTH });
const silent = (data: Buffer) => ({ data, response: 0 });

const VALID_QUERIES = ['SELECT c FROM t WHERE id = 1', 'UPDATE t SET n = n + 1 WHERE id = 2'];
const hugeLength = (() => {
  const b = query('SELECT c FROM t WHERE id = 3');
  b.writeUIntLE(0xffffff, 0, 3); // says 16 MB (and a continuation packet after it); the capture has 29 bytes
  return b;
})();
const badLength = (() => {
  const b = query('UPDATE t SET n = 0 WHERE id = 4');
  b.writeUIntLE(0x00abcd, 0, 3); // a corrupt length: 43981 bytes, of which the rest of the stream holds ~60
  return b;
})();

const CONNECTIONS: Connection[] = [
  { name: 'valid', requests: [ok(login('app')), ok(query(VALID_QUERIES[0])), ok(command(0x0e)), ok(query(VALID_QUERIES[1])), silent(command(0x01))] },
  { name: 'login cut in the middle', requests: [silent(login('app').subarray(0, 40))] },
  { name: 'a command whose length says 16 MB', requests: [ok(login('app')), ok(query(VALID_QUERIES[0])), silent(hugeLength)] },
  { name: 'not MySQL (HTTP)', requests: [ok(Buffer.from('GET /index.html HTTP/1.1\r\nHost: db\r\n\r\n'))] },
  { name: 'a corrupt length field mid-stream', requests: [ok(login('app')), ok(badLength), ok(query('SELECT 5')), silent(command(0x01))] },
  { name: 'SSLRequest', requests: [silent(sslRequest()), ok(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x30]), Buffer.alloc(0x30, 0xa5)]))] },
  { name: 'compressed protocol', requests: [ok(login('app', CAPS | CLIENT_COMPRESS)), ok(Buffer.from('0c00000000000078' + '9c63606060000000040001', 'hex'))] },
];

function writeCapture(file: string): number {
  const w = PcapWriter.create(file, { linkType: LinkType.RAW });
  const t0 = Date.UTC(2024, 0, 1) * 1000;
  let n = 0;
  CONNECTIONS.forEach((c, i) => {
    for (const p of capturedPackets(c, i, i === 4 ? 7 : 1448)) w.write(p, t0 + 1000 * n++); // 1 ms apart; one in 7-byte segments
  });
  w.close();
  return n;
}

// ---- the target: greets, answers every packet with OK, prints what each connection sent --------------

const TARGET_SCRIPT = `
const net = require('node:net');
const [host, port, greetingHex] = process.argv.slice(1);
const greeting = Buffer.from(greetingHex, 'hex');
const ok = (seq) => Buffer.from([7, 0, 0, seq, 0, 0, 0, 2, 0, 0, 0]);
const open = new Map();
const report = (tag, got) => process.stdout.write(tag + ' ' + Buffer.concat(got).toString('hex') + '\\n');
const server = net.createServer((sock) => {
  const got = [];
  open.set(sock, got);
  process.stdout.write('ACCEPT\\n');
  let pending = Buffer.alloc(0);
  sock.on('data', (d) => {
    got.push(d);
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 4) {
      const len = pending.readUIntLE(0, 3);
      if (pending.length < 4 + len) break;
      const seq = pending[3];
      const cmd = pending[4];
      pending = pending.subarray(4 + len);
      if (seq === 0 && cmd === 1) { sock.end(); return; }
      sock.write(ok((seq + 1) & 255));
    }
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    open.delete(sock);
    report('CONN', got);
  });
  sock.write(greeting);
});
server.listen(Number(port), host, () => process.stdout.write('LISTENING\\n'));
process.on('SIGTERM', () => {
  for (const got of open.values()) report('OPEN', got);
  process.exit(0);
});
`;

describe('tcpcopy --protocol mysql on a corrupt capture (real CLI, intercept and a minimal MySQL target in namespaces)', function () {
  this.timeout(120_000);
  let topo: Topology;
  let run: TcpcopyRun;
  /** What each target connection received, in order of closing. */
  let received: Buffer[];
  let records: number;

  before(async function () {
    requireRoot(this);
    topo = await createTopology();
    const pcap = path.join(topo.mkdir('pcap'), 'bad-mysql.pcap');
    records = writeCapture(pcap);
    const target: ProcHandle = topo.spawn('target', process.execPath, ['-e', TARGET_SCRIPT, TARGET, String(PORT), greeting(Buffer.from('TARGET-scramble-9999')).toString('hex')]);
    await target.waitFor(/^LISTENING$/m, { timeoutMs: 10_000 });
    const intercept = await startIntercept(topo, [PORT]);
    try {
      run = await runTcpcopy(topo, ['-i', pcap, '-x', `${PORT}-${TARGET}:${PORT}`, '-s', ASSISTANT, '-c', '203.0.113.x',
        '--protocol', 'mysql', '--mysql-user', `app:${PASSWORD}`, '--tail-timeout', '10'], 60_000);
    } finally {
      // tcpcopy has ended and reset what it left open. A connection's close comes after all its bytes, so once the
      // target has seen every connection it accepted close, it has everything that was sent (at most 10 s; what is
      // still open then is reported at SIGTERM).
      const lines = (re: RegExp) => (target.stdout().match(re) ?? []).length;
      for (const end = Date.now() + 10_000; lines(/^CONN /gm) < lines(/^ACCEPT$/gm) && Date.now() < end; ) await sleep(20);
      await intercept.stop();
      await target.stop('SIGTERM', 5000);
    }
    received = [...target.stdout().matchAll(/^(?:CONN|OPEN) ([0-9a-f]*)$/gm)].map((m) => Buffer.from(m[1], 'hex'));
  });

  after(async () => {
    await topo?.destroy();
  });

  const context = () => `exit ${run.code}\nstderr:\n${run.stderr}\nstdout:\n${run.stdout}`;

  it('exits 0 with a summary and no stack trace', () => {
    expect(run.code, context()).to.equal(0);
    expect(run.summary, context()).to.be.an('object');
    expect(run.stderr, context()).not.to.match(/^\s+at .+:\d+:\d+\)?$|internal error|Error:/m);
    expect(run.stderr, 'a protocol hook threw').not.to.match(/failed in on\w+/);
    for (const line of run.stderr.split('\n').filter(Boolean)) expect(line, context()).to.match(/^tcpcopy: /);
    expect(run.summary.capture, context()).to.include({ records, malformed: 0 });
    expect(run.summary.engine, context()).to.include({ sessionsCreated: CONNECTIONS.length, protocolFaults: 0 });
  });

  it('counts every bad connection by why it was given up', () => {
    expect(run.summary.protocol, context()).to.include({
      name: 'mysql',
      // Cut login, 16 MB length, HTTP, corrupt length.
      streamsCorrupt: 4,
      skippedTls: 1,
      skippedCompressed: 1,
      skippedNoPassword: 0,
      // Valid, 16 MB length, corrupt length: logged in before their bytes went bad.
      loginsReplayed: 3,
    });
  });

  it('replays the valid connection and the good part of the others, and nothing of what is not MySQL', () => {
    const withBytes = received.filter((b) => b.length > 0);
    const shown = withBytes.map((b) => JSON.stringify(b.toString('latin1').replace(/[^\x20-\x7e]/g, '.'))).join('\n');
    expect(withBytes, `target connections that received bytes (of ${received.length}):\n${shown}\n${context()}\n${JSON.stringify(run.summary)}`).to.have.length(3);
    const all = Buffer.concat(received).toString('latin1');
    for (const q of VALID_QUERIES) expect(all).to.include(q);
    expect(all, 'the query after the corrupt length field').not.to.include('SELECT 5');
    expect(all).not.to.include('GET /index.html');
    expect(all).not.to.include('SELECT c FROM t WHERE id = 3');
    expect(all).not.to.include('UPDATE t SET n = 0');
    expect(Buffer.concat(received).includes(Buffer.from([0x16, 0x03, 0x01])), 'TLS bytes').to.equal(false);
    // Sent: the valid connection's two queries, ping and quit, and the query before the 16 MB length; all but the quit answered.
    expect(run.summary.protocol, context()).to.include({ commands: 5, answersOk: 4, answersError: 0 });
  });
});
