import { expect } from 'chai';
import { loadProtocol } from '@tcpcopy/core';
import { BUILT_IN_PROTOCOLS } from '../src/built-in-protocols';

describe('the protocols tcpcopy knows by name', () => {
  for (const name of Object.keys(BUILT_IN_PROTOCOLS)) {
    it(`loads ${name} by its short name`, () => {
      expect(loadProtocol(name, {}, { builtIns: BUILT_IN_PROTOCOLS }).name).to.equal(name);
    });
  }

  it('names them when a protocol cannot be found', () => {
    expect(() => loadProtocol('no-such-protocol', {}, { builtIns: BUILT_IN_PROTOCOLS }))
      .to.throw(/^cannot load protocol "no-such-protocol": .* \(available: raw, http, mysql\)$/);
  });
});
