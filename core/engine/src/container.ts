import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { NULL_ROUTES, type RouteRegistry } from './intercept/route-registry';
import type { PacketSink } from './output/packet-sink';
import { DEFAULT_PROTOCOL } from './protocol/protocol-driver';
import type { SessionProtocol } from './protocol/session-protocol';
import type { TransferTable } from './rewrite/address-map';
import type { EngineConfig } from './session/engine-context';
import { ReplayEngine } from './session/replay-engine';

/**
 * The injectable parts of a replay. A program registers its own parts (a
 * sink that records, a protocol of its own, routes to its intercepts) in a
 * tsyringe container and resolves the engine from it.
 */
export const Tokens = {
  /** Where rewritten packets go (RawSocketSink in the CLI). Required. */
  PacketSink: Symbol.for('tcpcopy.PacketSink') as InjectionToken<PacketSink>,
  /** What replays where (-x). Required. */
  TransferTable: Symbol.for('tcpcopy.TransferTable') as InjectionToken<TransferTable>,
  /** The channel to intercept (InterceptClient in the CLI). Default: none. */
  RouteRegistry: Symbol.for('tcpcopy.RouteRegistry') as InjectionToken<RouteRegistry>,
  /** The protocol module. Default: raw. */
  SessionProtocol: Symbol.for('tcpcopy.SessionProtocol') as InjectionToken<SessionProtocol>,
  /** Engine settings (partial; the rest are defaults). */
  EngineConfig: Symbol.for('tcpcopy.EngineConfig') as InjectionToken<Partial<EngineConfig>>,
  /** Fake client addresses (-c) as host-order numbers. Default: none. */
  ClientAddresses: Symbol.for('tcpcopy.ClientAddresses') as InjectionToken<readonly number[]>,
  /** Where warnings go. Default: dropped. */
  Warn: Symbol.for('tcpcopy.Warn') as InjectionToken<(message: string) => void>,
  /** Where protocols' messages go. Default: with the warnings. */
  ProtocolLog: Symbol.for('tcpcopy.ProtocolLog') as InjectionToken<(message: string) => void>,
  /** The assembled engine. */
  ReplayEngine: Symbol.for('tcpcopy.ReplayEngine') as InjectionToken<ReplayEngine>,
} as const;

function optional<T>(c: DependencyContainer, token: InjectionToken<T>, fallback: T): T {
  return c.isRegistered(token, true) ? c.resolve(token) : fallback;
}

/**
 * A child container with the engine's defaults registered. Register the
 * required parts (PacketSink, TransferTable) and any overrides on it, then
 * `resolve(Tokens.ReplayEngine)`: one engine per container.
 */
export function createReplayContainer(parent: DependencyContainer = rootContainer): DependencyContainer {
  const c = parent.createChildContainer();
  let engine: ReplayEngine | undefined;
  c.register(Tokens.ReplayEngine, {
    useFactory: (r) =>
      (engine ??= new ReplayEngine({
        sink: r.resolve(Tokens.PacketSink),
        transfers: r.resolve(Tokens.TransferTable),
        routes: optional(r, Tokens.RouteRegistry, NULL_ROUTES),
        protocol: optional(r, Tokens.SessionProtocol, DEFAULT_PROTOCOL),
        config: optional(r, Tokens.EngineConfig, {}),
        clientAddresses: optional(r, Tokens.ClientAddresses, []),
        warn: optional(r, Tokens.Warn, () => undefined),
        protocolLog: r.isRegistered(Tokens.ProtocolLog, true) ? r.resolve(Tokens.ProtocolLog) : undefined,
      })),
  });
  return c;
}
