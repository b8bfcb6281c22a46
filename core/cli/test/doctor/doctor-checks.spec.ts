// The doctors' pure parts: the findings' format and exit code, the verdicts read from /proc text,
// the route lookup, the fake client network, and how replies are matched to the probe (its packets are the
// replay's own, PacketBuilder's).
import { expect } from 'chai';
import { PacketBuilder, parseIpv4, SegmentSpec, TcpPacket, TCP_ACK, TCP_RST, TCP_SYN } from '@tcpcopy/core';
import { exitCodeOf, fail, formatFinding, ok, verdict, warn } from '../../src/doctor/findings';
import { ProbeReplies } from '../../src/doctor/probe';
import { coveringNetwork, lookupRoute, parseRouteTable } from '../../src/doctor/route-checks';
import {
  checkConntrack,
  checkIpForward,
  checkPrivileges,
  checkRpFilter,
  effectiveRpFilter,
  hasNetRaw,
  type HostFiles,
} from '../../src/doctor/system-checks';

/** /proc as a map of paths to contents. */
const files = (entries: Record<string, string>): HostFiles => (p) => entries[p] ?? null;

describe('doctor findings', () => {
  it('prints one line per finding: level, subject, text, the first fix; further fixes on "or:" lines', () => {
    expect(formatFinding(ok('ip_forward', 'is 0'))).to.equal('ok    ip_forward: is 0');
    expect(formatFinding(warn('traffic', 'none seen'))).to.equal('warn  traffic: none seen');
    expect(formatFinding(fail('probe', 'no reply', 'ip route add X', 'check intercept'))).to.equal(
      'FAIL  probe: no reply; fix: ip route add X\n      or: check intercept');
  });

  it('exits 1 only when something failed, and says how many problems and warnings', () => {
    expect(exitCodeOf([ok('a', 'x'), warn('b', 'y')])).to.equal(0);
    expect(exitCodeOf([ok('a', 'x'), fail('b', 'y')])).to.equal(1);
    expect(verdict('tcpcopy', [ok('a', 'x')])).to.equal('tcpcopy doctor: all checks passed');
    expect(verdict('tcpcopy', [warn('a', 'x')])).to.equal('tcpcopy doctor: all checks passed (1 warning)');
    expect(verdict('intercept', [fail('a', 'x'), fail('b', 'y'), warn('c', 'z')])).to.equal('intercept doctor: 2 problems, 1 warning');
  });
});

describe('doctor checks of the kernel settings', () => {
  it('reads CAP_NET_RAW (bit 13) from CapEff', () => {
    expect(hasNetRaw('Name:\tnode\nCapEff:\t000001ffffffffff\n')).to.equal(true);
    expect(hasNetRaw('CapEff:\t0000000000002000\n')).to.equal(true);
    expect(hasNetRaw('CapEff:\t0000000000000000\n')).to.equal(false);
    expect(hasNetRaw('Name:\tnode\n')).to.equal(null);
    expect(checkPrivileges(files({ '/proc/self/status': 'CapEff:\t0000000000000000\n' }), 1000, 'the probe').level).to.equal('FAIL');
    expect(checkPrivileges(files({ '/proc/self/status': 'CapEff:\t0000000000002000\n' }), 1000, 'the probe').level).to.equal('ok');
    // root without CAP_NET_RAW (a container that dropped it) cannot open a raw socket either
    expect(checkPrivileges(files({ '/proc/self/status': 'CapEff:\t0000000000001000\n' }), 0, 'the probe').level).to.equal('FAIL');
  });

  it('fails ip_forward=1 with the sysctl that fixes it', () => {
    const f = checkIpForward(files({ '/proc/sys/net/ipv4/ip_forward': '1\n' }));
    expect(f.level).to.equal('FAIL');
    expect(f.fixes).to.deep.equal(['sysctl -w net.ipv4.ip_forward=0']);
    expect(checkIpForward(files({ '/proc/sys/net/ipv4/ip_forward': '0\n' })).level).to.equal('ok');
    expect(checkIpForward(files({})).level).to.equal('warn');
  });

  it('takes the higher of rp_filter "all" and the device\'s own, and warns about strict filtering only', () => {
    expect(effectiveRpFilter(0, 1)).to.equal(1);
    expect(effectiveRpFilter(1, 0)).to.equal(1);
    expect(effectiveRpFilter(2, 1)).to.equal(2);
    expect(effectiveRpFilter(null, null)).to.equal(0);
    const proc = files({
      '/proc/sys/net/ipv4/conf/all/rp_filter': '0',
      '/proc/sys/net/ipv4/conf/eth0/rp_filter': '1',
      '/proc/sys/net/ipv4/conf/eth1/rp_filter': '2',
    });
    const f = checkRpFilter(proc, ['eth0', 'eth1']);
    expect(f.level).to.equal('warn');
    expect(f.text).to.contain('on eth0:');
    expect(f.fixes?.[0]).to.equal('sysctl -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 (or 2, loose)');
    expect(checkRpFilter(proc, ['eth1']).level).to.equal('ok');
  });

  it('judges the conntrack table by how full it is, and is fine without nf_conntrack', () => {
    const table = (count: number, max: number) => files({
      '/proc/sys/net/netfilter/nf_conntrack_count': String(count),
      '/proc/sys/net/netfilter/nf_conntrack_max': String(max),
    });
    expect(checkConntrack(table(10, 1000), 'tcpcopy').level).to.equal('ok');
    expect(checkConntrack(table(800, 1000), 'tcpcopy').level).to.equal('warn');
    const full = checkConntrack(table(1000, 1000), 'tcpcopy');
    expect(full.level).to.equal('FAIL');
    expect(full.fixes?.[0]).to.equal('sysctl -w net.netfilter.nf_conntrack_max=2000');
    expect(full.fixes?.[1]).to.contain('tcpcopy -o');
    expect(checkConntrack(table(1000, 1000), 'intercept').fixes).to.have.length(1);
    expect(checkConntrack(files({}), 'tcpcopy').level).to.equal('ok');
  });
});

describe('doctor routes', () => {
  // /proc/net/route of a little-endian host: default via 10.0.0.1 on eth0, 10.0.0.0/24 on eth0,
  // 198.51.100.0/24 on eth1, a down route on eth2.
  const TABLE = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0',
    'eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0',
    'eth1\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'eth2\t0071000A\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  ].join('\n');

  it('parses /proc/net/route and picks the longest prefix', () => {
    const routes = parseRouteTable(TABLE, true);
    expect(routes).to.have.length(3); // the route that is not up is left out
    expect(lookupRoute(routes, parseIpv4('198.51.100.30'))?.device).to.equal('eth1');
    expect(lookupRoute(routes, parseIpv4('10.0.0.7'))).to.include({ device: 'eth0', gateway: 0 });
    expect(lookupRoute(routes, parseIpv4('192.0.2.1'))).to.include({ device: 'eth0', gateway: parseIpv4('10.0.0.1') });
    expect(lookupRoute(routes.slice(1), parseIpv4('192.0.2.1'))).to.equal(null);
  });

  it('writes the fake client addresses as the network the target must route to the assistant', () => {
    const range = Array.from({ length: 254 }, (_, i) => parseIpv4('203.0.113.0') + i + 1);
    expect(coveringNetwork(range)).to.equal('203.0.113.0/24');
    expect(coveringNetwork([parseIpv4('203.0.113.5'), parseIpv4('203.0.113.6')])).to.equal('203.0.113.4/30');
    expect(coveringNetwork([parseIpv4('203.0.113.5')])).to.equal('203.0.113.5/32');
    expect(coveringNetwork([parseIpv4('10.0.0.1'), parseIpv4('203.0.113.5')])).to.equal('0.0.0.0/0');
  });
});

describe('doctor probe', () => {
  const client = parseIpv4('203.0.113.1');
  const target = parseIpv4('198.51.100.30');

  /** A reply from the target as intercept returns it. */
  function reply(flags: number, ack: number, from = target, srcPort = 80): TcpPacket {
    const builder = new PacketBuilder();
    const n = builder.build(Object.assign(new SegmentSpec(), { srcIp: from, dstIp: client, srcPort, dstPort: 40000, seq: 7, ack, flags }));
    const pkt = new TcpPacket();
    pkt.decode(builder.scratch, 0, n);
    return pkt;
  }

  it('takes a SYN-ACK acknowledging its ISN, a RST, and nothing else of another connection', async () => {
    const replies = new ProbeReplies();
    const isn = 0xffffffff; // the ACK wraps to 0
    const waiting = replies.wait(40000, { targetIp: target, targetPort: 80, isn }, 2000, () => undefined);
    replies.onReply(reply(TCP_SYN | TCP_ACK, 0, parseIpv4('198.51.100.31')), 0, Buffer.alloc(0)); // another host
    replies.onReply(reply(TCP_SYN | TCP_ACK, 0, target, 81), 0, Buffer.alloc(0)); // another port
    replies.onReply(reply(TCP_SYN | TCP_ACK, 0), 0, Buffer.alloc(0));
    expect((await waiting).answer).to.equal('syn-ack');

    const refused = replies.wait(40000, { targetIp: target, targetPort: 80, isn: 5 }, 2000, () => undefined);
    replies.onReply(reply(TCP_RST | TCP_ACK, 6), 0, Buffer.alloc(0));
    expect((await refused).answer).to.equal('rst');
  });

  it('answers "none" after its timeout, having asked for a retransmission halfway', async () => {
    const replies = new ProbeReplies();
    let halfway = 0;
    const started = Date.now();
    const result = await replies.wait(40001, { targetIp: target, targetPort: 80, isn: 1 }, 200, () => halfway++);
    expect(result.answer).to.equal('none');
    expect(halfway).to.equal(1);
    expect(Date.now() - started).to.be.within(150, 2000);
  });
});
