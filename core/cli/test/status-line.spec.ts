// The status line: what it says for given counters (tcpcopy and intercept), how it is drawn on a terminal
// and how log lines are written above it, the plain line per interval elsewhere, and the log it goes to
// (text or JSON lines, --log-format).
import type { InterceptStats } from '@tcpcopy/core';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger, type LogFields, type LogLevel } from '../src/log';
import { interceptStatus, RateMeter, replayStatus, startStatusLine, statusIntervalSeconds, TerminalStatus } from '../src/status-line';
import { PAST_OPTIONS, runCommand } from './support/commands';
import { summaryWith } from './support/summary';

const MIB = 2 ** 20;

describe('status line', () => {
  describe('tcpcopy\'s figures', () => {
    it('says sessions, packets, replies, rate, capture and RSS in a fixed order, with units', () => {
      const rate = new RateMeter();
      replayStatus(summaryWith({ seconds: 1, engine: { packetsSent: 100 } }), rate, 0);
      const s = summaryWith({
        seconds: 3,
        tcpPackets: 12345,
        kernelDrops: 2,
        failed: 1,
        engine: {
          sessionsCreated: 40, sessionsCompleted: 30, sessionsAborted: 3, handshakeTimeouts: 2, sessionTimeouts: 1, idleTimeouts: 4,
          packetsSent: 900, repliesReceived: 850, captureGaps: 5,
        },
      });
      const r = replayStatus(s, rate, 54 * MIB);
      expect(r.text).to.equal('3.0 s; sessions 40: 7 active, 30 closed (idle timeout 4), 3 reset (handshake timeout 2, session timeout 1); ' +
        'sent 900 packets, 1 send errors; replies 850 packets; 400 packets/s; captured 12345 packets, 2 dropped, 5 holes; RSS 54 MiB');
      expect(r.fields).to.deep.include({ packetsSent: 900, sendErrors: 1, replies: 850, rssBytes: 54 * MIB });
      expect(r.fields.sessions).to.deep.include({ total: 40, active: 7, closed: 30, reset: 3 });
      expect(r.fields.rate).to.deep.equal({ perSecond: 400, unit: 'packets/s' });
    });

    it('counts requests instead of packets when the protocol frames them, and leaves out unknown kernel drops', () => {
      const requests = {
        requests: { online: 0, target: 12 },
        status: { online: {}, target: { 200: 12 } },
        latencyMs: { online: nullLatency(), target: nullLatency() },
      };
      const rate = new RateMeter();
      replayStatus(summaryWith({ seconds: 10, requests: { ...requests, requests: { online: 0, target: 2 } } }), rate, 0);
      const r = replayStatus(summaryWith({ seconds: 12, engine: { sessionsCreated: 3, sessionsCompleted: 3 }, requests }), rate, 0);
      expect(r.text).to.match(/; sessions 3: 0 active, 3 closed, 0 reset; sent 0 packets, 0 send errors; requests answered 12; 5\.0 requests\/s; captured 0 packets, 0 holes;/);
      expect(r.fields.requests).to.deep.equal({ answered: 12, online: 0 });
    });

    it('says how many the online server answered when the capture shows it', () => {
      const requests = { requests: { online: 9, target: 8 }, status: { online: {}, target: {} }, latencyMs: { online: nullLatency(), target: nullLatency() } };
      expect(replayStatus(summaryWith({ requests }), new RateMeter(), 0).text).to.include('requests answered 8 (online 9);');
    });
  });

  it('intercept\'s figures: replies captured, routed, unmatched, dropped; tcpcopys and routes; replies/s; RSS', () => {
    const stats = { captured: 300, routed: 290, unmatched: 10, dropped: 0, clients: 2, routes: 17 } as InterceptStats;
    const rate = new RateMeter();
    rate.perSecond(90, 1);
    expect(interceptStatus(stats, 3, rate, 150 * MIB).text)
      .to.equal('3.0 s; replies 300 captured, 290 routed, 10 unmatched, 0 dropped; tcpcopys 2, routes 17; 100 replies/s; RSS 150 MiB');
  });

  it('rate: per second over the last interval, never negative', () => {
    const r = new RateMeter();
    expect(r.perSecond(10, 1)).to.equal(10);
    expect(r.perSecond(30, 3)).to.equal(10);
    expect(r.perSecond(30, 4)).to.equal(0);
    expect(r.perSecond(5, 5), 'a counter that went back (a new pass)').to.equal(0);
  });

  it('interval: --stats-interval when given, else 1 s on a terminal and 30 s elsewhere', () => {
    expect(statusIntervalSeconds(undefined, true)).to.equal(1);
    expect(statusIntervalSeconds(undefined, false)).to.equal(30);
    expect(statusIntervalSeconds(5, true)).to.equal(5);
    expect(statusIntervalSeconds(0, true)).to.equal(0);
  });

  describe('on a terminal', () => {
    function terminal(columns = 200) {
      const out: string[] = [];
      return { out, t: new TerminalStatus((s) => out.push(s), () => columns) };
    }

    it('is redrawn in place: carriage return and clear-line, no newline', () => {
      const { out, t } = terminal();
      t.show('one');
      t.show('two');
      expect(out).to.deep.equal(['\r\x1b[2Kone', '\r\x1b[2Ktwo']);
    });

    it('a log line erases it, is written whole, and the line is drawn again below it', () => {
      const { out, t } = terminal();
      t.writeAbove('before any status\n');
      t.show('status');
      t.writeAbove('a warning\n');
      expect(out.join('')).to.equal('before any status\n\r\x1b[2Kstatus\r\x1b[2Ka warning\nstatus');
    });

    it('is cut to the terminal\'s width, so that it never wraps', () => {
      const { out, t } = terminal(20);
      t.show('x'.repeat(50));
      expect(out[0]).to.equal(`\r\x1b[2K${'x'.repeat(18)}…`);
    });

    it('clear() erases it; later log lines are written plainly', () => {
      const { out, t } = terminal();
      t.show('status');
      t.clear();
      t.writeAbove('end\n');
      expect(out.slice(1)).to.deep.equal(['\r\x1b[2K', 'end\n']);
    });

    it('a logger on stderr writes through it', () => {
      const { out, t } = terminal();
      t.show('status');
      createLogger(2, false, { name: 'tcpcopy', prefixOnStderr: true, terminal: t })('warn', 'careful');
      expect(out[1]).to.equal('\r\x1b[2Ktcpcopy: careful\nstatus');
    });
  });

  it('elsewhere it is a log line per interval, with its figures as fields; stop() ends it', async () => {
    const lines: Array<{ level: LogLevel; message: string; fields?: LogFields }> = [];
    let n = 0;
    const status = startStatusLine({
      intervalS: 0.02, terminal: null, log: (level, message, fields) => lines.push({ level, message, fields }),
      read: () => ({ text: `line ${++n}`, fields: { n } }),
    });
    for (let i = 0; i < 200 && lines.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    status.stop();
    const seen = lines.length;
    expect(seen).to.be.at.least(3);
    expect(lines[0]).to.deep.equal({ level: 'info', message: 'line 1', fields: { status: { n: 1 } } });
    await new Promise((r) => setTimeout(r, 60));
    expect(lines.length, 'lines after stop()').to.equal(seen);
  });

  describe('the log', () => {
    let dir: string;
    before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpcopy-log-'))));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    function logTo(name: string, verbose: boolean, format: 'text' | 'json') {
      const file = path.join(dir, name);
      const fd = fs.openSync(file, 'a');
      return { log: createLogger(fd, verbose, { format, name: 'tcpcopy' }), read: () => fs.readFileSync(file, 'utf8'), close: () => fs.closeSync(fd) };
    }

    it('--log-format json: one JSON object a line with level, time, msg, name and the fields', () => {
      const l = logTo('a.json', false, 'json');
      l.log('info', 'replaying', { status: { sessions: 3 } });
      l.log('warn', 'careful');
      l.log('debug', 'not without -v');
      l.close();
      const lines = l.read().trim().split('\n').map((x) => JSON.parse(x));
      expect(lines).to.have.length(2);
      expect(lines[0]).to.deep.include({ level: 'info', msg: 'replaying', name: 'tcpcopy', status: { sessions: 3 } });
      expect(new Date(lines[0].time).getTime()).to.be.closeTo(Date.now(), 60_000);
      expect(lines[1]).to.deep.include({ level: 'warn', msg: 'careful' });
    });

    it('text: timestamped lines in a file, fields left out; debug only when verbose', () => {
      const l = logTo('a.log', true, 'text');
      l.log('info', 'replaying', { status: { sessions: 3 } });
      l.log('debug', 'detail');
      l.close();
      expect(l.read()).to.match(/^\d{4}-\d\d-\d\dT[\d:.]+Z info replaying\n\d{4}-[^ ]+ debug detail\n$/);
    });
  });

  describe('the commands', () => {
    for (const name of ['tcpcopy', 'intercept'] as const) {
      it(`${name}: an unknown --log-format is one line and exit 2`, () => {
        const r = runCommand(name, [...PAST_OPTIONS[name], '--log-format', 'yaml']);
        expect(r.code, r.stderr).to.equal(2);
        expect(r.stderr).to.equal(`${name}: --log-format yaml: expected text or json\n`);
      });
    }

    it('tcpcopy: --stats-interval applies to a pcap file too (it is no longer refused there)', () => {
      // Nothing listens at -s: the replay stops at the intercept, after the options were taken.
      const r = runCommand('tcpcopy', [...PAST_OPTIONS.tcpcopy, '--stats-interval', '1']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/^tcpcopy: .*127\.0\.0\.1:9/);
      expect(r.stderr).not.to.include('--stats-interval');
    });
  });
});

function nullLatency() {
  return { count: 0, min: null, mean: null, p50: null, p90: null, p99: null, max: null };
}
