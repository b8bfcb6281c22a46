import { parseProtocolOptions } from '@tcpcopy/core';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createProtocol } from '../src';
import { parseOptions, passwordOf, PASSWORD_ENV_PREFIX } from '../src/options';

describe('mysql: options (where target passwords come from)', () => {
  it('takes user=name:password lines, the first colon splitting (a password may hold colons)', () => {
    const o = parseOptions({ user: 'app:s3:cr:et\nedu:', 'default-user': 'app', 'default-schema': 'shop' });
    expect(passwordOf(o, 'app', {})).to.equal('s3:cr:et');
    expect(passwordOf(o, 'edu', {})).to.equal('');
    expect(o.defaultUser).to.equal('app');
    expect(o.defaultSchema).to.equal('shop');
  });

  it('falls back to TCPCOPY_MYSQL_PASSWORD_<user>, and to nothing', () => {
    const o = parseOptions({ user: 'app:given' });
    const env = { [`${PASSWORD_ENV_PREFIX}report`]: 'from-env', [`${PASSWORD_ENV_PREFIX}app`]: 'not-this' };
    expect(passwordOf(o, 'report', env)).to.equal('from-env');
    expect(passwordOf(o, 'app', env)).to.equal('given');
    expect(passwordOf(o, 'nobody', env)).to.equal(null);
  });

  it('reads a --protocol-config file with a list of users', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mysql-opts-')), 'mysql.json');
    fs.writeFileSync(file, JSON.stringify({ user: ['app:one', 'edu:two'], 'default-user': 'app' }));
    try {
      const o = parseOptions(parseProtocolOptions(['user=report:three'], file));
      expect([...o.passwords.entries()]).to.deep.equal([['app', 'one'], ['edu', 'two'], ['report', 'three']]);
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('refuses what it cannot use, saying how to write it', () => {
    expect(() => createProtocol({ user: 'app' })).to.throw(/user=app: expected user:password/);
    expect(() => createProtocol({ passwd: 'x' })).to.throw(/unknown option "passwd" \(known: user, default-user, default-schema\)/);
  });
});
