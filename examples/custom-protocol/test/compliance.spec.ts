import { protocolComplianceTests } from '@tcpcopy/core/compliance';
import { loadProtocol } from '@tcpcopy/core';
import { expect } from 'chai';
import * as path from 'node:path';
import { createProtocol } from '../src/line-protocol';

protocolComplianceTests('line (example)', {
  protocol: createProtocol({ rename: 'alice:bob' }),
  exchanges: [
    { client: Buffer.from('hello alice\n'), server: Buffer.from('hi\n'), expect: Buffer.from('hello bob\n') },
    { client: Buffer.from('get alice and alice\n'), server: Buffer.from(`${'x'.repeat(3000)}\n`), expect: Buffer.from('get bob and bob\n') },
    { client: Buffer.from('bye\n'), server: Buffer.from('bye\n') },
  ],
});

describe('line (example): loading', () => {
  it('loads by path with its options, as tcpcopy --protocol ./line-protocol.js does', () => {
    const p = loadProtocol(path.join(__dirname, '..', 'src', 'line-protocol.js'), { rename: 'a:b' });
    expect(p.name).to.equal('line');
  });

  it('rejects a bad option with a clear message', () => {
    expect(() => loadProtocol(path.join(__dirname, '..', 'src', 'line-protocol.js'), { rename: 'nocolon' })).to.throw(/rename=nocolon: expected old:new/);
  });
});
