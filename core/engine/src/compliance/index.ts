/**
 * @tcpcopy/core/compliance: the compliance suite every protocol package runs,
 * and the test doubles it is built from (a simulated target, a packet
 * builder, an engine on a fake clock), for protocol authors' own tests, plus
 * a fake ProtocolContext for driving a ProtocolSession by hand.
 *
 * @module @tcpcopy/core/compliance
 */
export * from './protocol-compliance';
export * from './engine-rig';
export * from './sim-target';
export * from './packets';
export * from './fake-context';
