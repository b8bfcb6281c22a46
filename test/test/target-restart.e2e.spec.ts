// The target server restarted under load (issue 9): "replay resumes as soon as it accepts connections again
// (within 100 ms, not after a handshake timeout), and loses no more than the C tool".
//
// test/src/bench/target-restart.ts with our tcpcopy and intercept, each load shape in a topology of its own: a
// 10 s load (keep-alive over 50 connections at 2,000 requests/s; short connections at 1,000/s) against nginx on
// the online host; 3 s in, the target's nginx quits (SIGQUIT) and a new one starts 2 s after. Requests are placed
// before, during and after the downtime by the online server's log time; a request is lost when the target's log
// lacks it. `npm run bench -- --only restart --compare-with DIR` runs the same with the C tool beside ours
// (figures in docs/architecture.md, "A target that restarts").
//
// Bounds (measured on the project's 2-core machine, everything in the namespaces sharing the two cores; loose
// because other tests may run at the same time):
// - resume: from the new nginx's spawn to the first request it logged, at most 500 ms (measured: 19-27 ms,
//   nginx's own start included; the claim is 100 ms, a shared machine can add a scheduling pause);
// - loss: at most 1 % in each phase (measured: 0 in every phase but one request of 2,001 during a fast stop under
//   short connections, a request the target had taken and not answered when it closed). Requests sent while the
//   target is down wait in their sessions (keep-alive: rebuilt on a new connection; short: the SYN refused and
//   sent again every 50 ms) and reach it when it is back. The C tool loses 99.7-100 % of those, 20 % in all
//   (`npm run bench -- --only restart --compare-with DIR`).
import { expect } from 'chai';
import { note, requireRoot, requireTools } from '../src/harness';
import { formatPhase, measureTargetRestart, RESTART_SHAPES, STOP_KINDS, type RestartResult } from '../src/bench/target-restart';
import { thisTree } from '../src/bench/tool-flavours';

const RESUME_MAX_MS = 500;
const LOSS_MAX = 0.01;

describe('the target server restarted under load (real tcpcopy live in namespaces)', function () {
  for (const stop of STOP_KINDS) for (const shape of RESTART_SHAPES) {
    describe(`${shape.what}: nginx on the target stopped (${stop}: ${stop === 'graceful' ? 'SIGQUIT' : 'SIGTERM'}) and started again 2 s later`, function () {
      this.timeout(30_000);
      let r: RestartResult;

      before(async function () {
        requireRoot(this);
        requireTools(this, ['nginx']);
        this.timeout(120_000);
        r = await measureTargetRestart(thisTree(), shape, stop);
        const e = r.summary?.engine ?? {};
        note(`lost before the stop ${formatPhase(r.before)}, during the downtime ${formatPhase(r.during)}, after ${formatPhase(r.after)}; ` +
          `resume ${r.resumeMs.toFixed(0)} ms after the new nginx was spawned; nginx quit in ${r.quitMs} ms, down ${r.downMs} ms`);
        note(`tcpcopy: sessions ${e.sessionsCreated}, rebuilt ${e.sessionsReconstructed}, SYNs refused ${e.synsRefused}, handshake timeouts ${e.handshakeTimeouts}, ` +
          `reset ${e.sessionsAborted}, reconnects given up ${e.reconnectsGivenUp}, retransmissions ${e.retransmissions}; unfinished: ` +
          `${(r.summary?.unfinished?.sessions ?? []).slice(0, 5).map((u: any) => `${u.connection} (${u.reason})`).join(', ') || 'none'}`);
      });

      it('the load ran through the restart: every request answered online, some of them during the downtime', () => {
        expect(r.load.errors, `load errors: ${r.load.errorSamples.join('; ')}`).to.equal(0);
        expect(r.during.online, 'requests served online during the downtime').to.be.greaterThan(shape.rate);
        expect(r.after.online, 'requests served online after it').to.be.greaterThan(shape.rate * 3);
      });

      it(`replay resumes within ${RESUME_MAX_MS} ms of the target's return (loose bound on a shared machine; the claim is 100 ms)`, () => {
        expect(r.resumeMs, 'ms from the new nginx\'s spawn to its first replayed request').to.be.at.most(RESUME_MAX_MS);
      });

      it(`loses at most ${LOSS_MAX * 100} % before the stop, during the downtime and after the restart`, () => {
        expect(r.before.lost / r.before.online, `lost before the stop: ${formatPhase(r.before)}`).to.be.at.most(LOSS_MAX);
        expect(r.during.lost / r.during.online, `lost during the downtime: ${formatPhase(r.during)}`).to.be.at.most(LOSS_MAX);
        expect(r.after.lost / r.after.online, `lost after the restart: ${formatPhase(r.after)}`).to.be.at.most(LOSS_MAX);
      });
    });
  }
});
