/**
 * What {@link ReplayError} is about:
 *
 * - `BAD_OPTION`: an option's value (transfers, client addresses, the local address, intercept
 *   addresses) or a combination of options that does not go together (a file and devices;
 *   memoryLimitBytes with a file; a filter with raw-socket capture);
 * - `PCAP_FILE`: the pcap file cannot be opened or read (`cause` is a PcapFormatError, with its own code);
 * - `PROTOCOL`: the protocol module cannot be loaded or refused its options (`cause`: ProtocolLoadError);
 * - `OUTPUT`: the raw IP socket or the data-link output device cannot be opened;
 * - `CAPTURE`: live capture cannot start (no such device, a filter that does not compile, no
 *   permission; `cause` is a LiveCaptureError, with its own code);
 * - `INTERCEPT`: an intercept cannot be reached or is not one (`cause`: InterceptConnectError).
 */
export type ReplayErrorCode = 'BAD_OPTION' | 'PCAP_FILE' | 'PROTOCOL' | 'OUTPUT' | 'CAPTURE' | 'INTERCEPT';

/**
 * Why {@link replay} could not run: bad input or an environment that does not allow it, never a
 * bug. The message is one line for a person (what is wrong, how to fix it), as tcpcopy prints it;
 * `code` is for programs; `cause` is the error of the part that failed, when there is one.
 */
export class ReplayError extends Error {
  override name = 'ReplayError';
  constructor(
    readonly code: ReplayErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
