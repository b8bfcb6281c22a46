// RawSocketSink when the kernel says "later" (EAGAIN): in a network namespace of its own, packets go out
// through a veth behind a slow token bucket, so they sit in its queue holding the socket's (tiny)
// send buffer. The sink must keep the rest, wait for the socket to be writable, and send every packet.
// A child process runs the sink inside the namespace (`ip netns exec`); it needs root, as tcpcopy does.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const NS = `netio-sink-${process.pid}`;
const PACKETS = 200;

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

// The child: sends PACKETS packets of 1,000 bytes in one turn to an address behind the veth and
// prints the sink's counters once every packet is accounted for (or after 15 s).
const CHILD = `
const { RawSocketSink } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'output', 'raw-socket-sink.js'))});
const { buildPacket } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'compliance', 'packets.js'))});
const sink = new RawSocketSink((m) => console.error(m), { sendBuffer: 32768 });
const payload = Buffer.alloc(960, 0x61);
for (let i = 0; i < ${PACKETS}; i++) {
  const p = buildPacket({ src: '198.51.100.1', sport: 40000, dst: '198.51.100.77', dport: 80, seq: i, ack: 1, flags: 0x18, payload });
  sink.send(p, 0, p.length, 0xc633644d); // 198.51.100.77
}
const queuedAtOnce = sink.stats.sent;
const end = Date.now() + 15000;
const timer = setInterval(() => {
  const s = sink.stats;
  if (s.sent + s.failed >= ${PACKETS} || Date.now() > end) {
    clearInterval(timer);
    console.log(JSON.stringify({ ...s, sentBeforeTheTurnEnded: queuedAtOnce, sendCalls: sink.sendCalls }));
    sink.close();
  }
}, 20);
`;

describe('RawSocketSink when the kernel\'s send buffer is full', function () {
  this.timeout(30_000);

  before(() => {
    run('ip', ['netns', 'add', NS]);
    run('ip', ['-n', NS, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
    run('ip', ['-n', NS, 'addr', 'add', '198.51.100.1/24', 'dev', 'v0']);
    run('ip', ['-n', NS, 'link', 'set', 'v0', 'up']);
    run('ip', ['-n', NS, 'link', 'set', 'v1', 'up']);
    // A fixed neighbour: no ARP to wait for (the peer drops the frames, addressed to another MAC).
    run('ip', ['-n', NS, 'neigh', 'replace', '198.51.100.77', 'lladdr', '02:00:00:00:00:77', 'dev', 'v0']);
    // 2 Mbit/s: 200 packets of 1,000 bytes take about 0.8 s to leave.
    run('tc', ['-n', NS, 'qdisc', 'replace', 'dev', 'v0', 'root', 'tbf', 'rate', '2mbit', 'burst', '2000', 'limit', '1000000']);
  });

  after(() => {
    spawnSync('ip', ['netns', 'del', NS], { timeout: 10_000 });
  });

  it('keeps what the kernel refuses for now, waits for the socket to be writable, and sends every packet', () => {
    const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, '-e', CHILD], { encoding: 'utf8', timeout: 25_000 });
    expect(r.status, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.sentBeforeTheTurnEnded, 'nothing goes before the end of the turn').to.equal(0);
    expect(out.sent).to.equal(PACKETS);
    expect(out.failed).to.equal(0);
    // The send buffer (64 KiB as the kernel doubles it) holds a few dozen: the rest had to wait, each counted once.
    expect(out.queued).to.be.within(PACKETS / 2, PACKETS);
    expect(out.sendCalls, 'one sendmmsg per writable wake-up, not one per packet').to.be.below(PACKETS / 4);
    expect(r.stderr).to.equal('');
  });
});
