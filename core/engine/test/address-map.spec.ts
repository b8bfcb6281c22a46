// -x and -c parsing, the transfer table, the fake client address map and client port shifts, on their own.
import { expect } from 'chai';
import { formatIpv4, parseIpv4 } from '../src/decode/ip-address';
import {
  ClientAddressMap,
  OptionError,
  parseClientAddresses,
  parseTransfers,
  shiftPort,
  TransferTable,
} from '../src/rewrite/address-map';

const ip = parseIpv4;

/** The OptionError that `fn` throws (fails if it throws anything else, or nothing). */
function optionError(fn: () => unknown): OptionError {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(OptionError);
    expect((e as Error).name).to.equal('OptionError');
    return e as OptionError;
  }
  expect.fail('no OptionError thrown');
}

describe('address map', () => {
  describe('parseTransfers (-x)', () => {
    it('reads [onlineIP:]onlinePort-targetIP:targetPort', () => {
      expect(parseTransfers('80-198.51.100.30:8080')).to.deep.equal([
        { onlineIp: 0, onlinePort: 80, targetIp: ip('198.51.100.30'), targetPort: 8080 },
      ]);
      expect(parseTransfers('198.51.100.20:80-198.51.100.30:80')).to.deep.equal([
        { onlineIp: ip('198.51.100.20'), onlinePort: 80, targetIp: ip('198.51.100.30'), targetPort: 80 },
      ]);
    });

    it('reads a list, in order, with blanks around the items', () => {
      const t = parseTransfers(' 80-198.51.100.30:80 , 198.51.100.20:3306-198.51.100.31:3307,1-198.51.100.32:65535');
      expect(t.map((x) => [formatIpv4(x.onlineIp), x.onlinePort, formatIpv4(x.targetIp), x.targetPort])).to.deep.equal([
        ['0.0.0.0', 80, '198.51.100.30', 80],
        ['198.51.100.20', 3306, '198.51.100.31', 3307],
        ['0.0.0.0', 1, '198.51.100.32', 65535],
      ]);
    });

    it('reads the MACs of -o, either or both', () => {
      const [both] = parseTransfers('80@02:00:5E:00:53:01-198.51.100.30:80@02:00:5e:00:53:ff');
      expect(both.srcMac!.toString('hex')).to.equal('02005e005301');
      expect(both.dstMac!.toString('hex')).to.equal('02005e0053ff');
      const [dstOnly] = parseTransfers('80-198.51.100.30:80@02:00:5e:00:53:02');
      expect(dstOnly.srcMac).to.equal(undefined);
      expect(dstOnly.dstMac!.toString('hex')).to.equal('02005e005302');
      const [none] = parseTransfers('80-198.51.100.30:80');
      expect(none).to.not.have.property('srcMac');
      expect(none).to.not.have.property('dstMac');
    });

    describe('errors: an OptionError that quotes the item and says what is wrong', () => {
      const cases: Array<[string, string, RegExp]> = [
        ['empty', '', /^-x is empty: expected \[onlineIP:\]onlinePort/],
        ['blank', '   ', /^-x is empty/],
        ['no dash', '80:198.51.100.30:80', /^-x 80:198\.51\.100\.30:80: no "-" between the online and the target side/],
        ['an empty item in a list', '80-198.51.100.30:80,', /^-x : no "-"/],
        ['no target port', '80-198.51.100.30', /^-x 80-198\.51\.100\.30: the target needs an address and a port/],
        ['no target address', '80-:80', /target address "" is not an IPv4 address/],
        ['a name for an address', '80-target.example:80', /target address "target\.example" is not an IPv4 address/],
        ['an octet over 255', '80-198.51.100.256:80', /target address "198\.51\.100\.256" is not an IPv4 address/],
        ['a bad online address', '198.51.100:80-198.51.100.30:80', /online address "198\.51\.100" is not an IPv4 address/],
        ['a service name', '80-198.51.100.30:http', /target port "http" is not a port number \(1-65535\)/],
        ['port 0', '0-198.51.100.30:80', /online port 0 is outside 1-65535/],
        ['port 65536', '80-198.51.100.30:65536', /target port 65536 is outside 1-65535/],
        ['six digits', '80-198.51.100.30:100000', /target port "100000" is not a port number/],
        ['a negative port', '80--1:80', /target address "-1" is not an IPv4 address/],
        ['an empty online port', '-198.51.100.30:80', /online port "" is not a port number/],
        ['the online server itself', '198.51.100.20:80-198.51.100.20:80', /the target is the online server itself/],
        ['a bad source MAC', '80@02:00:5e:00:53-198.51.100.30:80', /source MAC "02:00:5e:00:53" is not a MAC address like 02:00:5e:00:53:01/],
        ['a bad next-hop MAC', '80-198.51.100.30:80@zz:00:5e:00:53:01', /next-hop MAC "zz:00:5e:00:53:01" is not a MAC address/],
        ['an empty MAC', '80@-198.51.100.30:80', /source MAC "" is not a MAC address/],
      ];
      for (const [what, spec, message] of cases) {
        it(`${what}: ${JSON.stringify(spec)}`, () => {
          expect(optionError(() => parseTransfers(spec)).message).to.match(message);
        });
      }

      it('names the bad item of a list, not the good ones', () => {
        const e = optionError(() => parseTransfers('80-198.51.100.30:80,81-198.51.100.30:99999'));
        expect(e.message).to.match(/^-x 81-198\.51\.100\.30:99999: target port 99999 is outside 1-65535$/);
      });

      it('the online server itself, only with the same address and port', () => {
        expect(() => parseTransfers('198.51.100.20:80-198.51.100.20:81')).to.not.throw();
        expect(() => parseTransfers('80-198.51.100.20:80')).to.not.throw(); // any online address: 0 is not an address
      });
    });
  });

  describe('TransferTable', () => {
    const table = new TransferTable(parseTransfers('198.51.100.20:80-198.51.100.30:8080,80-198.51.100.31:80,3306-198.51.100.32:3306'));

    it('the first transfer that matches wins, as in tcpcopy', () => {
      expect(table.match(ip('198.51.100.20'), 80)!.targetIp).to.equal(ip('198.51.100.30'));
      expect(table.match(ip('198.51.100.21'), 80)!.targetIp, 'any other address: the catch-all').to.equal(ip('198.51.100.31'));
      expect(table.match(ip('198.51.100.20'), 3306)!.targetPort).to.equal(3306);
    });

    it('no transfer for another port', () => {
      expect(table.match(ip('198.51.100.20'), 8080)).to.equal(undefined);
      expect(table.match(ip('198.51.100.30'), 443)).to.equal(undefined);
    });

    it('a catch-all before a specific transfer shadows it', () => {
      const t = new TransferTable(parseTransfers('80-198.51.100.31:80,198.51.100.20:80-198.51.100.30:80'));
      expect(t.match(ip('198.51.100.20'), 80)!.targetIp).to.equal(ip('198.51.100.31'));
    });

    it('describe gives -x back in its canonical form', () => {
      expect(table.describe()).to.equal('198.51.100.20:80-198.51.100.30:8080,80-198.51.100.31:80,3306-198.51.100.32:3306');
      expect(new TransferTable(parseTransfers(table.describe())).transfers).to.deep.equal(table.transfers);
    });
  });

  describe('parseClientAddresses (-c)', () => {
    it('a list of addresses, in order, duplicates kept', () => {
      expect(parseClientAddresses('203.0.113.5, 203.0.113.6,203.0.113.5').map(formatIpv4)).to.deep.equal([
        '203.0.113.5', '203.0.113.6', '203.0.113.5',
      ]);
    });

    it('a.b.c.x stands for .1 to .254, in order (neither .0 nor .255)', () => {
      const all = parseClientAddresses('203.0.113.x').map(formatIpv4);
      expect(all).to.have.length(254);
      expect(all[0]).to.equal('203.0.113.1');
      expect(all[253]).to.equal('203.0.113.254');
      expect(new Set(all).size).to.equal(254);
      expect(all.every((a) => a.startsWith('203.0.113.'))).to.equal(true);
    });

    it('X as well as x, mixed with plain addresses', () => {
      const all = parseClientAddresses('192.0.2.9,203.0.113.X').map(formatIpv4);
      expect(all).to.have.length(255);
      expect(all[0]).to.equal('192.0.2.9');
      expect(all[1]).to.equal('203.0.113.1');
    });

    it('errors: OptionError naming the item', () => {
      expect(optionError(() => parseClientAddresses('203.0.300.x')).message).to.equal('-c 203.0.300.x: not an address pattern like 203.0.113.x');
      expect(optionError(() => parseClientAddresses('203.0.113.5,203.0.113')).message).to.match(/^-c 203\.0\.113: not an IPv4 address/);
      expect(optionError(() => parseClientAddresses('203.0.x.1')).message).to.match(/^-c 203\.0\.x\.1: not an IPv4 address/);
      expect(optionError(() => parseClientAddresses('203.0.113.5,')).message).to.match(/^-c : not an IPv4 address/);
      expect(() => parseClientAddresses('')).to.throw(OptionError);
    });
  });

  describe('ClientAddressMap', () => {
    it('gives each captured client a fake address round-robin, in order of first use, and keeps it', () => {
      const pool = ['203.0.113.1', '203.0.113.2', '203.0.113.3'].map(ip);
      const m = new ClientAddressMap(pool);
      const clients = ['192.0.2.10', '192.0.2.11', '192.0.2.12', '192.0.2.13'].map(ip);
      expect(clients.map((c) => formatIpv4(m.map(c)))).to.deep.equal(['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.1']);
      expect(formatIpv4(m.map(clients[1])), 'again: the same').to.equal('203.0.113.2');
      expect(formatIpv4(m.map(ip('192.0.2.14'))), 'the next new one goes on round the pool').to.equal('203.0.113.2');
    });

    it('without a pool (no -c), the captured address stays', () => {
      const m = new ClientAddressMap([]);
      expect(m.map(ip('192.0.2.10'))).to.equal(ip('192.0.2.10'));
    });
  });

  describe('shiftPort', () => {
    it('a shift of 0 leaves any port alone, a low one too', () => {
      for (const p of [1, 80, 1023, 1024, 40000, 65535]) expect(shiftPort(p, 0)).to.equal(p);
    });

    it('moves a port by the shift', () => {
      expect(shiftPort(40000, 1)).to.equal(40001);
      expect(shiftPort(40000, 4099)).to.equal(44099);
      expect(shiftPort(40000, -2048)).to.equal(37952);
    });

    it('wraps within 1024-65535', () => {
      expect(shiftPort(65535, 1)).to.equal(1024);
      expect(shiftPort(65000, 1000)).to.equal(1024 + (65000 + 1000 - 65536));
      expect(shiftPort(1024, -1)).to.equal(65535);
      expect(shiftPort(1500, -1000)).to.equal(65536 - 524);
    });

    it('lifts a port below 1024 into the range before moving it', () => {
      expect(shiftPort(80, 1)).to.equal(1105);
      expect(shiftPort(1023, 1)).to.equal(2048);
      expect(shiftPort(0, 5)).to.equal(1029);
    });

    it('always lands in 1024-65535, and shifting back returns the port', () => {
      const shifts = [1, 97, 2048, 4099, 64511, 64512, 64513, -1, -4099, 3 * 4099 + 2 * 97 + 5 * 2048, 10 * 64512 + 3];
      for (let port = 1024; port <= 65535; port += 211) {
        for (const s of shifts) {
          const out = shiftPort(port, s);
          expect(out, `${port} + ${s}`).to.be.within(1024, 65535);
          expect(Number.isInteger(out)).to.equal(true);
          expect(shiftPort(out, -s), `${port} + ${s} and back`).to.equal(port);
        }
      }
    });

    it('different shifts smaller than the range give different ports (passes and copies never meet)', () => {
      const seen = new Set<number>();
      for (let pass = 0; pass < 4; pass++) for (let copy = 0; copy < 10; copy++) seen.add(shiftPort(40000, pass * 4099 + copy * 97));
      expect(seen.size).to.equal(40);
      expect(shiftPort(40000, 64512), 'a whole turn: the same port').to.equal(40000);
    });
  });
});
