// The plugin inside the real session engine (EngineRig from @tcpcopy/core/compliance) against a tiny
// Redis: captures are built as the online client would have produced them (pipelined writes share an
// ACK, a write after reading replies acknowledges them), replayed, and the target's keyspace compared
// with the online one.
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '@tcpcopy/core';
import { buildPacket, EngineRig } from '@tcpcopy/core/compliance';
import { expect } from 'chai';
import { createProtocol } from '../src';
import { MiniRedis } from './mini-redis';
import { cmd } from './support';

interface Write {
  cmds: Buffer[];
  /** Sent without reading the replies to the previous write (the same ACK). */
  pipelined?: boolean;
}

const CLIENT = { src: '198.51.100.10', sport: 40000, dst: '198.51.100.20', dport: 80 };

/**
 * Runs the writes against an "online" MiniRedis, as one client connection, and returns the packets a
 * capture of it would hold (from client byte `startAt` on, without the handshake when startAt > 0),
 * with the online keyspace.
 */
function captureOf(writes: Write[], opts: { password?: string; startAt?: number; mss?: number } = {}) {
  const online = new MiniRedis(opts.password);
  const conn = online.conn('online');
  const isn = 1_000_000;
  const serverIsn = 5000;
  const mss = opts.mss ?? 1448;
  const startAt = opts.startAt ?? 0;
  const packets: Buffer[] = [];
  if (startAt === 0) {
    packets.push(buildPacket({ ...CLIENT, seq: isn, flags: TCP_SYN }));
    packets.push(buildPacket({ ...CLIENT, seq: isn + 1, ack: serverIsn + 1, flags: TCP_ACK }));
  }
  let offset = 0; // client bytes so far
  let received = 0; // reply bytes the client has read
  let answered = 0; // reply bytes the server has sent
  for (const w of writes) {
    if (!w.pipelined) received = answered;
    const data = Buffer.concat(w.cmds);
    for (let off = 0; off < data.length; off += mss) {
      const end = Math.min(data.length, off + mss);
      const from = Math.max(off, startAt - offset);
      if (from >= end) continue;
      packets.push(buildPacket({ ...CLIENT, seq: isn + 1 + offset + from, ack: serverIsn + 1 + received, flags: TCP_ACK | TCP_PSH, payload: data.subarray(from, end) }));
    }
    offset += data.length;
    for (const r of online.feed(conn, data)) answered += Buffer.byteLength(r, 'latin1');
  }
  packets.push(buildPacket({ ...CLIENT, seq: isn + 1 + offset, ack: serverIsn + 1 + answered, flags: TCP_ACK | TCP_FIN }));
  return { packets, online };
}

function replay(packets: Buffer[], target: MiniRedis, opts: { password?: string; burst?: boolean; resetAfterAnswers?: number } = {}) {
  let rig: EngineRig | undefined;
  rig = new EngineRig({
    protocol: createProtocol(opts.password ? { password: opts.password } : {}),
    sim: { responder: target.responder((key) => rig?.repliedBytes.get(key) ?? 0), resetAfterAnswers: opts.resetAfterAnswers },
    config: { idleReleaseMs: 2000 },
  });
  if (opts.burst) rig.captureBurst(packets);
  else for (const p of packets) rig.capture(p);
  rig.advance(200);
  return rig!;
}

/** A workload with every shape: log in, sequential commands, pipelines, a MULTI block, inline commands. */
function workload(password: string): Write[] {
  const writes: Write[] = [{ cmds: [cmd('AUTH', password)] }, { cmds: [cmd('SELECT', '3')] }];
  for (let i = 0; i < 5; i++) writes.push({ cmds: [cmd('INCR', 'seq')] });
  writes.push({ cmds: Array.from({ length: 20 }, (_, i) => cmd('RPUSH', 'list', `item-${i}`)) });
  writes.push({ cmds: [cmd('INCR', 'piped')] }, { cmds: [cmd('INCR', 'piped')], pipelined: true }, { cmds: [cmd('GET', 'piped')], pipelined: true });
  writes.push({ cmds: [cmd('MULTI'), cmd('SET', 'tx', 'v'), cmd('INCR', 'seq'), cmd('EXEC')] });
  writes.push({ cmds: [Buffer.from('SET inline yes\r\n'), Buffer.from('INCR seq\r\n')] });
  writes.push({ cmds: [cmd('LRANGE', 'list', '0', '-1')] });
  for (let i = 0; i < 8; i++) writes.push({ cmds: [cmd('RPUSH', 'after', String(i)), cmd('INCR', 'seq')] });
  writes.push({ cmds: [cmd('SET', 'big', 'b'.repeat(5000))] }, { cmds: [cmd('GET', 'big')] });
  return writes;
}

describe('redis plugin in the session engine (tiny Redis target)', () => {
  it('replays a full connection to a target with another password: same keyspace, no request early', () => {
    const { packets, online } = captureOf(workload('online-pw'), { password: 'online-pw' });
    const target = new MiniRedis('target-pw');
    const rig = replay(packets, target, { password: 'target-pw', burst: true });
    expect(target.dump()).to.equal(online.dump());
    expect(rig.engine.stats.idleReleases, 'idle releases').to.equal(0);
    expect(rig.engine.stats.protocolFaults).to.equal(0);
    expect(rig.engine.stats.sessionsCompleted).to.equal(1);
    // A write sent after reading replies reached the target only once the engine had all earlier replies;
    // a pipelined one went without waiting (so some command did arrive before earlier answers).
    const [c] = target.conns;
    let index = 0;
    let overtook = 0;
    for (const w of workload('online-pw')) {
      const what = `command ${index + 1} (${c.commands[index]?.join(' ')})`;
      if (!w.pipelined) expect(c.receivedBefore[index], what).to.equal(c.sentBefore[index]);
      for (let k = index; k < index + w.cmds.length; k++) if (c.receivedBefore[k] < c.sentBefore[k]) overtook++;
      index += w.cmds.length;
    }
    expect(overtook, 'commands that went before earlier answers (pipelines)').to.be.greaterThan(10);
  });

  it('without a password option the AUTH goes as captured and the target refuses the rest', () => {
    const { packets } = captureOf(workload('online-pw'), { password: 'online-pw' });
    const target = new MiniRedis('target-pw');
    replay(packets, target);
    expect(target.dump()).to.equal('[]');
  });

  it('logs in first on a connection captured mid-command, then replays from the next whole command', () => {
    const writes = workload('online-pw');
    const all = Buffer.concat(writes.flatMap((w) => w.cmds));
    // Start the capture inside the fourth INCR seq (after AUTH, SELECT and three INCRs).
    const before = Buffer.concat(writes.slice(0, 5).flatMap((w) => w.cmds)).length;
    const startAt = before + 7;
    const { packets, online } = captureOf(writes, { password: 'online-pw', startAt });
    // What the online server did from the first whole captured command on, in the same database.
    const expected = new MiniRedis();
    const e = expected.conn('x');
    expected.feed(e, cmd('SELECT', '3'));
    const firstWhole = before + cmd('INCR', 'seq').length;
    expected.feed(e, all.subarray(firstWhole));
    // The mid-stream connection cannot know the SELECT it never saw: it lands in database 0.
    const target = new MiniRedis('target-pw');
    const rig = replay(packets, target, { password: 'target-pw' });
    expect(rig.engine.stats.sessionsFakedHandshake).to.equal(1);
    expect(target.conns[0].commands[0]).to.deep.equal(['AUTH', 'target-pw']);
    expect(target.conns[0].commands[1]).to.deep.equal(['INCR', 'seq']);
    expect(JSON.parse(target.dump())[0][1]).to.deep.equal(JSON.parse(expected.dump())[0][1]);
    expect(online.dump()).to.not.equal('[]');
    expect(rig.engine.stats.idleReleases).to.equal(0);
  });

  it('logs in again and restores the database when the target drops the connection', () => {
    const writes = workload('online-pw').filter((w) => w.cmds.length === 1 && !w.pipelined); // nothing in flight at a drop
    const { packets, online } = captureOf(writes, { password: 'online-pw' });
    const target = new MiniRedis('target-pw');
    // The target resets every connection after 5 answers: after the first, the prelude's 2 and 3 of the client's.
    const rig = replay(packets, target, { password: 'target-pw', resetAfterAnswers: 5 });
    expect(rig.engine.stats.sessionsReconstructed).to.be.at.least(2);
    expect(target.conns.length).to.equal(rig.engine.stats.sessionsReconstructed + 1);
    for (const c of target.conns.slice(1)) expect(c.commands.slice(0, 2)).to.deep.equal([['AUTH', 'target-pw'], ['SELECT', '3']]);
    expect(target.dump()).to.equal(online.dump());
    expect(rig.engine.stats.protocolFaults).to.equal(0);
  });
});
