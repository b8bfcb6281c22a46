// What one wake-up costs a process that does nothing with what woke it: a minimal C receiver (epoll and
// recv) against a minimal node one (dgram 'message', doing nothing; then one setImmediate per message, as
// the tools' end-of-turn flush), each sent single datagrams on loopback at a low rate. At a few hundred
// connections a second the tools are woken a few times per request, so this floor is what tcpcopy and
// intercept pay on top of their own work (docs/benchmarks.md, "short_500 against the C tool").
import { spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sleep, spawnProc, type ProcHandle } from '../harness';
import { cpuSplitSeconds } from '../harness/live-load';
import type { Figures } from './figures';

const SCENARIO = 'wake-up cost';
const RATE = 1000;
const DATAGRAMS = 5000;
const PORT = 40111;

/** Both receivers say "ready" once bound, and "done N" at a 1-byte datagram (sent after the others: loopback keeps their order). */
const C_RECEIVER = `
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
int main(int argc, char **argv) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(0x7f000001) };
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = s }, out[8];
  epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  printf("ready\\n");
  fflush(stdout);
  char buf[2048];
  long n = 0;
  for (;;) {
    epoll_wait(ep, out, 8, -1);
    for (ssize_t r; (r = recv(s, buf, sizeof buf, 0)) >= 0; n++) {
      if (r == 1) { printf("done %ld\\n", n); fflush(stdout); }
    }
  }
}
`;

/** The node receivers: 'noop' does nothing per message, 'immediate' schedules one setImmediate that does nothing. */
const NODE_RECEIVER = `
  const s = require('node:dgram').createSocket('udp4');
  const idle = () => {};
  let n = 0;
  const onMessage = (m) => {
    if (m.length === 1) process.stdout.write('done ' + n + '\\n');
    n++;
  };
  const withImmediate = (m) => {
    setImmediate(idle);
    onMessage(m);
  };
  s.on('message', process.argv[2] === 'immediate' ? withImmediate : onMessage);
  s.bind(${PORT}, '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

export async function wakeupCost(figures: Figures): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-wakeup-'));
  try {
    const cc = spawnSync('cc', ['-O2', '-o', path.join(dir, 'recv'), '-x', 'c', '-'], { input: C_RECEIVER, encoding: 'utf8' });
    if (cc.status !== 0) return figures.skip(SCENARIO, `cannot compile the C receiver (cc: ${cc.error?.message ?? cc.stderr.trim()})`);
    const receivers: Array<[string, string, string[]]> = [
      ['c', path.join(dir, 'recv'), [String(PORT)]],
      ['node', process.execPath, ['-e', NODE_RECEIVER, 'noop']],
      ['node_immediate', process.execPath, ['-e', NODE_RECEIVER, 'immediate']],
    ];
    for (const [name, exe, args] of receivers) {
      const proc = spawnProc(exe, args);
      try {
        await proc.waitFor(/ready/, { stream: 'stdout', timeoutMs: 10_000 });
        const cpu = await measure(proc);
        figures.add(`wakeup.${name}.user`, (cpu.user / DATAGRAMS) * 1e6, 'µs per datagram');
        figures.add(`wakeup.${name}.system`, (cpu.system / DATAGRAMS) * 1e6, 'µs per datagram');
      } finally {
        await proc.stop('SIGKILL', 2000).catch(() => undefined);
      }
    }
    figures.note(`wake-up cost: ${DATAGRAMS} datagrams of 64 bytes at ${RATE}/s on loopback, each receiver alone; CPU from /proc (10 ms ticks: ±2 µs per datagram)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Sends the datagrams, paced, and returns the receiver's CPU over them. */
async function measure(proc: ProcHandle): Promise<{ user: number; system: number }> {
  const sock = dgram.createSocket('udp4');
  const payload = Buffer.alloc(64);
  const before = cpuSplitSeconds(proc.pid);
  const start = performance.now();
  let sent = 0;
  try {
    while (sent < DATAGRAMS) {
      const due = Math.min(DATAGRAMS, Math.floor(((performance.now() - start) * RATE) / 1000));
      for (; sent < due; sent++) sock.send(payload, PORT, '127.0.0.1');
      await sleep(1);
    }
    sock.send(Buffer.alloc(1), PORT, '127.0.0.1');
    const [, got] = await proc.waitFor(/done (\d+)/, { stream: 'stdout', timeoutMs: 10_000 });
    if (Number(got) !== DATAGRAMS) throw new Error(`the receiver got ${got} of ${DATAGRAMS} datagrams`);
  } finally {
    sock.close();
  }
  const after = cpuSplitSeconds(proc.pid);
  return { user: after.user - before.user, system: after.system - before.system };
}
