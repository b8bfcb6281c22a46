/** A listen problem, with a message that says how to fix it. `code` is the errno code. */
export class InterceptListenError extends Error {
  override name = 'InterceptListenError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** What went wrong when intercept tried to listen on host:port, in words, with the option to fix. */
export function listenError(err: NodeJS.ErrnoException, host: string, port: number): InterceptListenError {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new InterceptListenError('EADDRINUSE', `port ${port} on ${host} is already in use ` +
        `(another intercept running? stop it or choose another port with -p)`);
    case 'EADDRNOTAVAIL':
      return new InterceptListenError('EADDRNOTAVAIL', `cannot listen on ${where}: ${host} is not an address of this host ` +
        `(fix -b; 0.0.0.0 listens on all)`);
    case 'EACCES':
      return new InterceptListenError('EACCES', `cannot listen on ${where}: permission denied ` +
        `(ports below 1024 need root or CAP_NET_BIND_SERVICE)`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new InterceptListenError(err.code, `cannot listen on ${where}: ${host} is not an IP address (fix -b)`);
    default:
      return new InterceptListenError(err.code ?? 'EIO', `cannot listen on ${where}: ${err.message}`);
  }
}
