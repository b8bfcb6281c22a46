// The capture filter built from -x on its own: its text, and what it selects when libpcap compiles it (tcpdump reads
// a file of packets built for the purpose with the filter, and says which ones match).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { captureFilter } from '../src/capture/capture-filter';
import { PcapWriter } from '../src/capture/pcap-writer';
import { buildPacket } from '../src/compliance/packets';
import { LinkType } from '../src/decode/link-type';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../src/decode/tcp-packet';
import { parseTransfers } from '../src/rewrite/address-map';

const filterOf = (spec: string): string => captureFilter(parseTransfers(spec));

function haveTcpdump(): boolean {
  const r = spawnSync('tcpdump', ['--version'], { stdio: 'ignore', timeout: 10_000 });
  return !r.error && r.status === 0;
}

/** A classic pcap file (link type 101: raw IPv4) of `packets`. */
function writeRawPcap(file: string, packets: Buffer[]): void {
  const writer = PcapWriter.create(file, { linkType: LinkType.RAW });
  packets.forEach((p, i) => writer.write(p, (1_700_000_000 + i) * 1e6));
  writer.close();
}

interface Probe {
  name: string;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  flags?: number;
}

/** The names of the probes libpcap's compilation of `filter` selects. */
function selected(filter: string, probes: Probe[]): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capture-filter-'));
  try {
    const file = path.join(dir, 'probes.pcap');
    // Each probe is known by its sequence number (its index).
    writeRawPcap(file, probes.map((p, i) => buildPacket({ ...p, seq: i + 1, ack: 1, flags: p.flags ?? TCP_ACK | TCP_PSH, payload: 'x' })));
    const r = spawnSync('tcpdump', ['-nn', '-S', '-r', file, filter], { encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new Error(`tcpdump refused ${JSON.stringify(filter)}: ${r.stderr}`);
    return r.stdout.split('\n').filter(Boolean).map((line) => {
      const m = /seq (\d+):/.exec(line);
      if (!m) throw new Error(`unexpected tcpdump line: ${line}`);
      return probes[Number(m[1]) - 1].name;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const CLIENT = '192.0.2.7';
const FAKE = '203.0.113.9';

describe('captureFilter', () => {
  describe('text', () => {
    it('any online address: the port, and not what goes to the target when it has the same port', () => {
      expect(filterOf(`80-${TARGET}:80`)).to.equal(`(tcp dst port 80 and not dst host ${TARGET})`);
      // Our output goes to another port: it never matches, and the target may be the online host itself.
      expect(filterOf(`80-${TARGET}:8080`)).to.equal(`(tcp dst port 80)`);
    });

    it('an online address: the port on that host only', () => {
      expect(filterOf(`${ONLINE}:80-${TARGET}:80`)).to.equal(`(tcp dst port 80 and dst host ${ONLINE} and not dst host ${TARGET})`);
    });

    it('several transfers: one group each, in order, joined by or', () => {
      expect(filterOf(`80-${TARGET}:80, ${ONLINE}:3306-198.51.100.31:3307`)).to.equal(
        `(tcp dst port 80 and not dst host ${TARGET}) or (tcp dst port 3306 and dst host ${ONLINE})`,
      );
    });

    it('the MACs of -x (for -o) play no part', () => {
      expect(filterOf(`80@02:00:5e:00:53:01-${TARGET}:80@02:00:5e:00:53:02`)).to.equal(filterOf(`80-${TARGET}:80`));
    });
  });

  describe('what libpcap selects with it', function () {
    before(function () {
      if (!haveTcpdump()) this.skip();
    });

    const probes: Probe[] = [
      { name: 'client→online:80', src: CLIENT, sport: 40000, dst: ONLINE, dport: 80 },
      { name: 'client SYN→online:80', src: CLIENT, sport: 40001, dst: ONLINE, dport: 80, flags: TCP_SYN },
      { name: 'client→other:80', src: CLIENT, sport: 40002, dst: '198.51.100.21', dport: 80 },
      { name: 'client→online:81', src: CLIENT, sport: 40003, dst: ONLINE, dport: 81 },
      { name: 'online:80→client', src: ONLINE, sport: 80, dst: CLIENT, dport: 40000 },
      { name: 'ours→target:80', src: FAKE, sport: 40000, dst: TARGET, dport: 80 },
      { name: 'ours→target:8080', src: FAKE, sport: 40000, dst: TARGET, dport: 8080 },
      { name: 'target:80→ours', src: TARGET, sport: 80, dst: FAKE, dport: 40000 },
      { name: 'client→online:3306', src: CLIENT, sport: 40004, dst: ONLINE, dport: 3306 },
      { name: 'ours→target2:3306', src: FAKE, sport: 40005, dst: '198.51.100.31', dport: 3306 },
    ];

    it('the same port on another host: client packets to the port, never our own output to the target', () => {
      expect(selected(filterOf(`80-${TARGET}:80`), probes)).to.deep.equal(['client→online:80', 'client SYN→online:80', 'client→other:80']);
    });

    it('another port: packets to the online port (our output, to 8080, never matches)', () => {
      expect(selected(filterOf(`80-${TARGET}:8080`), probes)).to.deep.equal(['client→online:80', 'client SYN→online:80', 'client→other:80', 'ours→target:80']);
    });

    it('an online address: only packets to it', () => {
      expect(selected(filterOf(`${ONLINE}:80-${TARGET}:80`), probes)).to.deep.equal(['client→online:80', 'client SYN→online:80']);
    });

    it('several transfers: each one\'s client packets, none of the outputs', () => {
      expect(selected(filterOf(`${ONLINE}:80-${TARGET}:80,3306-198.51.100.31:3306`), probes)).to.deep.equal([
        'client→online:80', 'client SYN→online:80', 'client→online:3306',
      ]);
    });

    // With the target on the online host itself (another port), a filter that also said "not dst host X" saw nothing.
    // The exclusion is only needed when the ports are alike.
    it('the target on the online host, another port: the client packets are still selected', () => {
      expect(selected(filterOf(`${ONLINE}:80-${ONLINE}:8080`), probes)).to.deep.equal(['client→online:80', 'client SYN→online:80']);
    });
  });
});
