// What tcpcopy says about its intercepts: the error classes, the wording of each connect failure
// (naming the address and what to do), and of the losses and recoveries reported through onError.
import { CHANNEL_MIN_VERSION, CHANNEL_VERSION, ErrorCode, HelloStatus, type HelloAckMessage } from './channel-messages';

export type InterceptErrorCode =
  | 'REFUSED' | 'TIMEOUT' | 'UNREACHABLE' | 'DNS' | 'NOT_INTERCEPT' | 'VERSION' | 'CLOSED' | 'LOST' | 'PROTOCOL' | 'EIO'
  | 'AUTH' | 'RECOVERED';

/**
 * A channel problem; `address` is host:port of the intercept concerned. With keepRunning, the
 * recovery from a reported problem comes through onError too, with code RECOVERED.
 */
export class InterceptChannelError extends Error {
  override name = 'InterceptChannelError';
  constructor(readonly code: InterceptErrorCode, readonly address: string, message: string) {
    super(message);
  }
}

/** connect() failed; the message names the address and says what to do. */
export class InterceptConnectError extends InterceptChannelError {
  override name = 'InterceptConnectError';
}

const HINT = 'start intercept there or fix -s';

/** Failures after which keepRunning keeps trying (the intercept is down, not misconfigured). */
export function isTransient(err: InterceptConnectError, peerErrorCode: number): boolean {
  switch (err.code) {
    case 'REFUSED':
    case 'TIMEOUT':
    case 'UNREACHABLE':
    case 'EIO':
    case 'CLOSED':
    case 'LOST':
      return true;
    case 'PROTOCOL':
      return peerErrorCode === ErrorCode.SHUTDOWN; // it answered "shutting down"
    default:
      return false; // DNS, NOT_INTERCEPT, VERSION, AUTH: fix -s, the release or the secret
  }
}

export function errnoText(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ECONNRESET': return 'connection reset';
    case 'ETIMEDOUT': return 'connection timed out';
    case 'EHOSTUNREACH': return 'host unreachable';
    case 'ENETUNREACH': return 'network unreachable';
    case 'EPIPE': return 'broken pipe';
    default: return err.message;
  }
}

// ---- connect failures: `at` is the intercept's host:port --------------------------------

/**
 * An attempt's socket closed before HELLO_ACK: why, from the socket's error, else the ERROR
 * frame the intercept sent. `connecting`: the TCP connection was not even established.
 */
export function connectFailure(at: string, host: string, err: NodeJS.ErrnoException | null, peerError: string,
  connecting: boolean): InterceptConnectError {
  const cannot = `cannot reach intercept at ${at}`;
  if (err) {
    switch (err.code) {
      case 'ECONNREFUSED':
        return new InterceptConnectError('REFUSED', at, `${cannot}: connection refused; ${HINT}`);
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return new InterceptConnectError('DNS', at, `${cannot}: no such host "${host}"; fix -s`);
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
      case 'EADDRNOTAVAIL':
        return new InterceptConnectError('UNREACHABLE', at, `${cannot}: ${errnoText(err)} (check the address and routing); ${HINT}`);
      case 'ETIMEDOUT':
        return new InterceptConnectError('TIMEOUT', at, `${cannot}: connection timed out; ${HINT}`);
      default:
        if (connecting) return new InterceptConnectError('EIO', at, `${cannot}: ${err.message}; ${HINT}`);
    }
  }
  if (peerError) return refusedError(at, peerError);
  return new InterceptConnectError('CLOSED', at, `${at} closed the connection without answering HELLO: ` +
    `is it an intercept of this project (the C intercept speaks another protocol)? ${HINT}`);
}

/** No HELLO_ACK within the timeout; `connecting`: not even the TCP connection. */
export function helloTimeout(at: string, port: number, timeoutMs: number, connecting: boolean): InterceptConnectError {
  const secs = `${timeoutMs / 1000} s`;
  return connecting
    ? new InterceptConnectError('TIMEOUT', at, `cannot reach intercept at ${at}: no answer within ${secs} ` +
      `(host down, or a firewall drops port ${port}); ${HINT}`)
    : new InterceptConnectError('NOT_INTERCEPT', at, `${at} accepted the connection but did not answer HELLO ` +
      `within ${secs}: is it an intercept of this project (the C intercept speaks another protocol)? ${HINT}`);
}

/** The peer's first bytes (`sniffed`) or first frame is not an intercept's; `answered` previews it. */
export function notIntercept(at: string, answered: string, sniffed: boolean): InterceptConnectError {
  return new InterceptConnectError('NOT_INTERCEPT', at, `${at} is not an intercept: it answered ${answered}; fix -s` +
    (sniffed ? ' (the C intercept speaks another protocol)' : ''));
}

/** The intercept sent ERROR instead of HELLO_ACK (code AUTH: the secret handshake failed). */
export function refusedError(at: string, text: string, peerCode = 0): InterceptConnectError {
  return new InterceptConnectError(peerCode === ErrorCode.AUTH ? 'AUTH' : 'PROTOCOL', at,
    `intercept at ${at} refused this tcpcopy: ${text}`);
}

// ---- the secret handshake, as tcpcopy sees it -------------------------------------------

/** tcpcopy has a secret, and the intercept answered HELLO without challenging it. */
export function authNotOffered(at: string): InterceptConnectError {
  return new InterceptConnectError('AUTH', at, `intercept at ${at} does not check a secret (it was started without ` +
    `TCPCOPY_SECRET or --secret), and this tcpcopy has one: give the intercept the same secret, or run tcpcopy without one`);
}

/** The intercept challenged a tcpcopy that has no secret. */
export function authNoSecret(at: string): InterceptConnectError {
  return new InterceptConnectError('AUTH', at, `intercept at ${at} requires a shared secret: ` +
    `start tcpcopy with the intercept's secret in TCPCOPY_SECRET (or --secret)`);
}

/** The intercept's proof is wrong (or missing, or of an algorithm we do not know). */
export function authBadProof(at: string, why: string): InterceptConnectError {
  return new InterceptConnectError('AUTH', at, `intercept at ${at} did not prove it knows the secret (${why}): ` +
    `is it the intercept you meant, started with the same TCPCOPY_SECRET or --secret? fix -s or the secret`);
}

/** A frame before HELLO_ACK longer than the handshake allows. */
export function handshakeTooLong(at: string, type: number, length: number, max: number): InterceptConnectError {
  return new InterceptConnectError('NOT_INTERCEPT', at, `${at} sent a handshake message (type ${type}) of ${length} bytes, ` +
    `more than the ${max} allowed: is it an intercept of this project? fix -s`);
}

/** The HELLO_ACK is not one this tcpcopy accepts (versions, status); null if it is. */
export function helloAckError(at: string, ack: HelloAckMessage): InterceptConnectError | null {
  const range = (min: number, max: number): string => (min === max ? `${max}` : `${min} to ${max}`);
  if (ack.status === HelloStatus.VERSION_UNSUPPORTED || ack.version < CHANNEL_MIN_VERSION || ack.version > CHANNEL_VERSION) {
    return new InterceptConnectError('VERSION', at, `intercept at ${at} speaks channel protocol version ` +
      `${range(ack.minVersion, ack.version)}, this tcpcopy ${range(CHANNEL_MIN_VERSION, CHANNEL_VERSION)}: ` +
      `run the same release of tcpcopy and intercept`);
  }
  if (ack.status !== HelloStatus.OK) {
    return new InterceptConnectError('PROTOCOL', at, `intercept at ${at} refused HELLO (status ${ack.status})`);
  }
  return null;
}

// ---- reports through onError ------------------------------------------------------------

/** keepRunning: an intercept down at connect() does not fail it. */
export function pendingAtStart(err: InterceptConnectError): string {
  return `${err.message} (-L: tcpcopy goes on without it, tries again in the background ` +
    `and registers its routes when it answers)`;
}

/** keepRunning: a reconnect found something that is not a (compatible) intercept. */
export function stillTrying(err: InterceptConnectError): string {
  return `${err.message} (-L: still trying)`;
}

/** A READY channel closed; `reconnecting` with keepRunning. */
export function lostText(at: string, why: string, reconnecting: boolean): string {
  return reconnecting
    ? `lost the connection to intercept at ${at}: ${why}; reconnecting (-L): ` +
      `routes are queued and registered again when it answers`
    : `lost the connection to intercept at ${at}: ${why}; replies through it stop`;
}

/** keepRunning: every channel of an intercept that was down answers again. */
export function recoveredText(at: string, outage: {
  downAtStart: boolean; downSince: number; again: number; queueSent: number; queueDropped: number;
}): string {
  const secs = ((Date.now() - outage.downSince) / 1000).toFixed(1);
  const dropped = outage.queueDropped > 0 ? `, ${outage.queueDropped} dropped (queue full)` : '';
  return outage.downAtStart
    ? `connected to intercept at ${at} after ${secs} s (it was not reachable at start): ` +
      `${outage.queueSent} queued route(s) sent${dropped}`
    : `reconnected to intercept at ${at} after ${secs} s: ${outage.again} route(s) registered again, ` +
      `${outage.queueSent} queued route(s) sent${dropped}; replies flow again`;
}
