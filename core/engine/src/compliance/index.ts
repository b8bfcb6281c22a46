/**
 * @tcpcopy/core/compliance: the compliance suite every protocol package runs,
 * and the test doubles it is built from (a simulated target, a packet
 * builder, an engine on a fake clock), for protocol authors' own tests.
 *
 * @module @tcpcopy/core/compliance
 */
export * from './protocol-compliance';
export * from './engine-rig';
export * from './sim-target';
export * from './packets';
