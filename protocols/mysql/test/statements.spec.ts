import { expect } from 'chai';
import { StatementMap } from '../src/statements';

const p = (sql: string) => Buffer.from(sql);

describe('mysql: statement ids (online ids predicted, learned on first use)', () => {
  it('predicts a connection replayed from its start: 1, 2, 3 in PREPARE order, SQL PREPAREs counted', () => {
    const m = new StatementMap(true);
    const a = m.prepared(p('a'));
    m.sqlPrepared();
    const b = m.prepared(p('b'));
    expect(m.byOnlineId(1)).to.equal(a);
    expect(m.byOnlineId(3)).to.equal(b);
    expect(m.byOnlineId(2)).to.equal(null); // the SQL-level statement: not ours to map
  });

  it('learns the ids of a connection captured mid-way from the first use after its PREPAREs', () => {
    const m = new StatementMap(false);
    const a = m.prepared(p('a'));
    const b = m.prepared(p('b'));
    expect(m.byOnlineId(17)).to.equal(a); // the oldest unused one
    expect(m.byOnlineId(18)).to.equal(b);
    const c = m.prepared(p('c'));
    expect(m.byOnlineId(19)).to.equal(c); // predicted from there on
    expect(m.byOnlineId(5)).to.equal(null); // prepared before the capture
  });

  it('keeps counting after a reset (the server does), and a CLOSE of a dropped statement learns nothing', () => {
    const m = new StatementMap(true);
    m.prepared(p('a'));
    m.prepared(p('b'));
    m.clear();
    const c = m.prepared(p('c'));
    expect(m.byOnlineId(1, false)).to.equal(null);
    expect(c.used).to.equal(false);
    expect(m.byOnlineId(3)).to.equal(c);
  });

  it('forgets a closed statement, and bounds how many it keeps', () => {
    const m = new StatementMap(true);
    const a = m.prepared(p('a'));
    m.closed(a);
    expect(m.byOnlineId(1, false)).to.equal(null);
    for (let i = 0; i < 5000; i++) m.prepared(p('x'));
    expect(m.size).to.equal(4096);
    expect(m.evicted).to.equal(5000 - 4096);
  });
});
