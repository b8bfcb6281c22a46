// The doctors' capture check opens the capture its command opens: intercept's packet sockets refuse a filter
// with link-layer terms (libpcap would compile it for an Ethernet device), and tcpcopy's raw socket, which
// takes every device, still refuses a -i that names none. All of these fail before a socket opens: no root needed.
import { expect } from 'chai';
import { parseTransfers } from '@tcpcopy/core';
import { checkCapture } from '../../src/doctor/capture-checks';
import { formatFinding } from '../../src/doctor/findings';

const MiB = 1024 * 1024;

describe('doctor capture check', () => {
  for (const filter of ['ether host 02:00:00:00:00:01 and tcp', 'vlan and tcp']) {
    it(`intercept doctor: "${filter}" is not usable by intercept's capture, and the finding says why`, async () => {
      const findings = await checkCapture({
        method: { kind: 'packet-socket', devices: 'lo', filter, filterOrigin: '-F', bufferSize: 16 * MiB },
        windowMs: 0,
        what: 'replies',
      });
      expect(findings.map(formatFinding)).to.have.length(1);
      const [f] = findings;
      expect(f.level).to.equal('FAIL');
      expect(f.subject).to.equal('filter');
      expect(f.text).to.contain(`filter "${filter}" does not compile`);
      expect(f.text).to.contain('link-layer terms such as ether or vlan do not apply');
      expect(f.text).to.match(/\[-F\]$/);
      expect(formatFinding(f)).to.contain('fix: leave link-layer terms (ether, vlan) out of -F');
    });
  }

  it('intercept doctor: a filter that compiles gets as far as the device, which must exist', async () => {
    const [f, ...rest] = await checkCapture({
      method: { kind: 'packet-socket', devices: 'nosuch0', filter: 'tcp and src port 8080', filterOrigin: '-F', bufferSize: 16 * MiB },
      windowMs: 0,
      what: 'replies',
    });
    expect(rest).to.deep.equal([]);
    expect(f).to.include({ level: 'FAIL', subject: 'device' });
    expect(f.text).to.match(/^no network device "nosuch0" \(pick one of .*lo/);
  });

  it('tcpcopy doctor, raw socket (the default): a -i that names no device fails, as the replay would', async () => {
    const [f, ...rest] = await checkCapture({
      method: { kind: 'raw-socket', devices: 'lo,nosuch0', transfers: parseTransfers('80-192.0.2.30:8080') },
      windowMs: 0,
      what: 'packets for port 80',
    });
    expect(rest).to.deep.equal([]);
    expect(f).to.include({ level: 'FAIL', subject: 'device' });
    expect(f.text).to.contain('no network device "nosuch0"');
  });
});
