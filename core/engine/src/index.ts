/**
 * @tcpcopy/core: the replay engine as a library. The folders follow a packet:
 * capture → decode → session → protocol → rewrite → output, with intercept/
 * for the channel that brings the target's replies back.
 */
import 'reflect-metadata';

export * from './capture/pcap-file';
export * from './capture/frame-decoder';
export * from './capture/offline-source';
export * from './capture/live-source';
export * from './capture/capture-filter';
export * from './decode/checksum';
export * from './decode/seq';
export * from './decode/ip-address';
export * from './decode/tcp-packet';
export * from './decode/tcp-options';
export * from './decode/link';
export * from './session/timer-wheel';
export * from './session/client-stream';
export * from './session/engine-context';
export * from './session/session';
export * from './session/replay-engine';
export * from './protocol/session-protocol';
export * from './protocol/protocol-driver';
export * from './protocol/protocol-loader';
export * from './rewrite/address-map';
export * from './rewrite/packet-builder';
export * from './output/packet-sink';
export * from './output/raw-socket-sink';
export * from './output/pcap-sink';
export * from './intercept/route-registry';
export * from './replay/offline-replay';
export * from './replay/live-replay';
export * from './intercept/channel-messages';
export * from './intercept/intercept-client';
export * from './intercept/intercept-server';
export * from './capture/live-capture';
export * from './container';
