// The kernel filter of the raw-socket capture, built from -x: run in a small classic-BPF interpreter
// (the kernel's semantics for what it uses: loads out of the packet drop it), on packets built for
// the purpose, and held against what libpcap selects with captureFilter's text for the same -x.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JA, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_LD, BPF_LDX, BPF_MSH, BPF_RET, BPF_W,
  encodeBpfProgram, transferBpfProgram, type BpfInstruction,
} from '../src/capture/bpf-program';
import { captureFilter } from '../src/capture/capture-filter';
import { PcapWriter } from '../src/capture/pcap-writer';
import { buildPacket, udpPacket } from '../src/compliance/packets';
import { LinkType } from '../src/decode/link-type';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../src/decode/tcp-packet';
import { parseTransfers } from '../src/rewrite/address-map';

/** Runs `prog` on a packet that starts at its IPv4 header; returns the bytes kept (0: dropped). */
function runBpf(prog: readonly BpfInstruction[], pkt: Buffer): number {
  let a = 0;
  let x = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc];
    switch (code & 0x07) {
      case BPF_LD: {
        const mode = code & 0xe0;
        if (mode !== BPF_ABS && mode !== BPF_IND) throw new Error(`unsupported load mode at ${pc}`);
        const at = mode === BPF_IND ? x + k : k;
        const size = (code & 0x18) === BPF_W ? 4 : (code & 0x18) === BPF_H ? 2 : 1;
        if (at + size > pkt.length) return 0;
        a = size === 4 ? pkt.readUInt32BE(at) : size === 2 ? pkt.readUInt16BE(at) : pkt[at];
        break;
      }
      case BPF_LDX:
        if (code !== (BPF_LDX | BPF_B | BPF_MSH)) throw new Error(`unsupported ldx at ${pc}`);
        if (k >= pkt.length) return 0;
        x = (pkt[k] & 0x0f) * 4;
        break;
      case BPF_JMP: {
        const jop = code & 0xf0;
        if (jop === BPF_JA) pc += k;
        else if (jop === BPF_JEQ) pc += a === k ? jt : jf;
        else if (jop === BPF_JSET) pc += (a & k) !== 0 ? jt : jf;
        else throw new Error(`unsupported jump at ${pc}`);
        break;
      }
      case BPF_RET:
        return k;
      default:
        throw new Error(`unsupported instruction class at ${pc}`);
    }
  }
  throw new Error('the program ran off its end');
}

const programOf = (spec: string): BpfInstruction[] => transferBpfProgram(parseTransfers(spec));
const passes = (spec: string, pkt: Buffer): boolean => runBpf(programOf(spec), pkt) !== 0;

const ONLINE = '198.51.100.20';
const TARGET = '198.51.100.30';
const CLIENT = '192.0.2.7';
const FAKE = '203.0.113.9';

const tcp = (dst: string, dport: number, extra: { src?: string; sport?: number; fragment?: number; flags?: number } = {}): Buffer =>
  buildPacket({ src: extra.src ?? CLIENT, sport: extra.sport ?? 40000, dst, dport, seq: 1, ack: 1, flags: extra.flags ?? TCP_ACK | TCP_PSH, payload: 'x', fragment: extra.fragment });

/** The same packet with 4 bytes of IPv4 options (4 NOPs): the TCP header moves by 4. */
function withIpOptions(pkt: Buffer): Buffer {
  const out = Buffer.concat([pkt.subarray(0, 20), Buffer.from([1, 1, 1, 1]), pkt.subarray(20)]);
  out[0] = 0x46;
  out.writeUInt16BE(out.length, 2);
  return out;
}

describe('transferBpfProgram', () => {
  it('is a program the kernel accepts: jumps only forward and inside it, every path ends in a return', () => {
    for (const spec of [`80-${TARGET}:80`, `${ONLINE}:80-${TARGET}:8080`, `80-${TARGET}:80,${ONLINE}:3306-198.51.100.31:3306,8080-${TARGET}:9090`]) {
      const prog = programOf(spec);
      prog.forEach((ins, pc) => {
        if ((ins.code & 0x07) !== BPF_JMP) return;
        for (const off of (ins.code & 0xf0) === BPF_JA ? [ins.k] : [ins.jt, ins.jf]) {
          expect(off, `${spec}: jump at ${pc}`).to.be.within(0, 255);
          expect(pc + 1 + off, `${spec}: jump at ${pc}`).to.be.below(prog.length);
        }
      });
      expect(prog[prog.length - 1]).to.deep.equal({ code: BPF_RET, jt: 0, jf: 0, k: 0 });
    }
  });

  it('passes the online port, whatever the address, and nothing else', () => {
    const spec = `80-${TARGET}:8080`;
    expect(passes(spec, tcp(ONLINE, 80))).to.equal(true);
    expect(passes(spec, tcp('198.51.100.21', 80, { flags: TCP_SYN }))).to.equal(true);
    expect(passes(spec, tcp(ONLINE, 81))).to.equal(false);
    expect(passes(spec, tcp(CLIENT, 40000, { src: ONLINE, sport: 80 })), 'the server side').to.equal(false);
    expect(passes(spec, udpPacket(CLIENT, ONLINE, 40000, 80, 'x')), 'UDP to the port').to.equal(false);
  });

  it('reads the port behind IPv4 options', () => {
    const spec = `80-${TARGET}:8080`;
    expect(passes(spec, withIpOptions(tcp(ONLINE, 80)))).to.equal(true);
    // Without the options the same bytes would read as port 80 at the old place: 0x0101 is not it.
    expect(passes(spec, withIpOptions(tcp(ONLINE, 81)))).to.equal(false);
  });

  it('drops later fragments and packets too short to hold the ports', () => {
    const spec = `80-${TARGET}:8080`;
    expect(passes(spec, tcp(ONLINE, 80, { fragment: 0x2000 })), 'first fragment (offset 0)').to.equal(true);
    expect(passes(spec, tcp(ONLINE, 80, { fragment: 0x0001 })), 'a later fragment').to.equal(false);
    expect(passes(spec, tcp(ONLINE, 80).subarray(0, 22))).to.equal(false);
  });

  it('an online address: that host only; same ports elsewhere: never what goes to the target (our own output)', () => {
    expect(passes(`${ONLINE}:80-${TARGET}:8080`, tcp(ONLINE, 80))).to.equal(true);
    expect(passes(`${ONLINE}:80-${TARGET}:8080`, tcp('198.51.100.21', 80))).to.equal(false);
    expect(passes(`80-${TARGET}:80`, tcp(ONLINE, 80))).to.equal(true);
    expect(passes(`80-${TARGET}:80`, tcp(TARGET, 80, { src: FAKE }))).to.equal(false);
    // The target on the online host, another port: its client packets still pass.
    expect(passes(`${ONLINE}:80-${ONLINE}:8080`, tcp(ONLINE, 80))).to.equal(true);
  });

  it('several transfers: any of them', () => {
    const spec = `${ONLINE}:80-${TARGET}:80,3306-198.51.100.31:3306,8080-${TARGET}:9090`;
    expect(passes(spec, tcp(ONLINE, 80))).to.equal(true);
    expect(passes(spec, tcp('198.51.100.22', 3306))).to.equal(true);
    expect(passes(spec, tcp('198.51.100.31', 3306, { src: FAKE }))).to.equal(false);
    expect(passes(spec, tcp('198.51.100.22', 8080))).to.equal(true);
    expect(passes(spec, tcp('198.51.100.22', 80))).to.equal(false);
  });

  it('refuses no transfers, and more transfers than the kernel takes instructions', () => {
    expect(() => transferBpfProgram([])).to.throw(RangeError, /at least one transfer/);
    const many = Array.from({ length: 700 }, (_, i) => ({ onlineIp: 0x0a000001 + i, onlinePort: 80, targetIp: 0x0a100001, targetPort: 80 }));
    expect(() => transferBpfProgram(many)).to.throw(RangeError, /more than the kernel's 4096 \(give fewer -x transfers\)/);
  });

  it('encodes struct sock_filter in this machine\'s byte order', () => {
    const prog = programOf(`80-${TARGET}:8080`);
    const bytes = encodeBpfProgram(prog);
    expect(bytes.length).to.equal(prog.length * 8);
    const le = os.endianness() === 'LE';
    prog.forEach((ins, i) => {
      expect(le ? bytes.readUInt16LE(i * 8) : bytes.readUInt16BE(i * 8)).to.equal(ins.code);
      expect([bytes[i * 8 + 2], bytes[i * 8 + 3]]).to.deep.equal([ins.jt, ins.jf]);
      expect(le ? bytes.readUInt32LE(i * 8 + 4) : bytes.readUInt32BE(i * 8 + 4)).to.equal(ins.k);
    });
  });

  describe('selects what libpcap selects with captureFilter\'s text', () => {
    const probes = [
      tcp(ONLINE, 80), tcp(ONLINE, 80, { flags: TCP_SYN }), tcp('198.51.100.21', 80), tcp(ONLINE, 81),
      tcp(CLIENT, 40000, { src: ONLINE, sport: 80 }), tcp(TARGET, 80, { src: FAKE }), tcp(TARGET, 8080, { src: FAKE }),
      tcp(FAKE, 40000, { src: TARGET, sport: 80 }), tcp(ONLINE, 3306), tcp('198.51.100.31', 3306, { src: FAKE }),
      tcp(ONLINE, 80, { fragment: 0x2000 }), tcp(ONLINE, 80, { fragment: 0x0003 }), udpPacket(CLIENT, ONLINE, 40000, 80, 'x'),
      withIpOptions(tcp(ONLINE, 80)), withIpOptions(tcp(ONLINE, 3306)), withIpOptions(tcp(TARGET, 80, { src: FAKE })),
    ];
    const specs = [
      `80-${TARGET}:80`, `80-${TARGET}:8080`, `${ONLINE}:80-${TARGET}:80`, `${ONLINE}:80-${ONLINE}:8080`,
      `${ONLINE}:80-${TARGET}:80,3306-198.51.100.31:3306`,
    ];

    before(function () {
      const r = spawnSync('tcpdump', ['--version'], { stdio: 'ignore', timeout: 10_000 });
      if (r.error || r.status !== 0) throw new Error('tcpdump is needed here (./scripts/setup.sh installs it)');
    });

    for (const spec of specs) {
      it(`-x ${spec}`, () => {
        const ours = probes.map((p, i) => (runBpf(programOf(spec), p) ? i : -1)).filter((i) => i >= 0);
        const theirs = libpcapSelects(captureFilter(parseTransfers(spec)), probes);
        expect(ours).to.deep.equal(theirs);
        expect(ours.length, 'some probes pass').to.be.greaterThan(0);
      });
    }
  });
});

/** The indices of the packets tcpdump (libpcap's compiler) selects with `filter`, from a raw-IPv4 pcap file. */
function libpcapSelects(filter: string, packets: Buffer[]): number[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpf-program-'));
  try {
    const file = path.join(dir, 'probes.pcap');
    // Each record's timestamp (seconds) is its index: tcpdump -tt prints it first on each line.
    const writer = PcapWriter.create(file, { linkType: LinkType.RAW });
    packets.forEach((p, i) => writer.write(p, (1_700_000_000 + i) * 1e6));
    writer.close();
    const r = spawnSync('tcpdump', ['-nn', '-tt', '-r', file, filter], { encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new Error(`tcpdump refused ${JSON.stringify(filter)}: ${r.stderr}`);
    return r.stdout.split('\n').filter(Boolean).map((line) => Number(line.split('.')[0]) - 1_700_000_000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
