import { protocolComplianceTests } from '@tcpcopy/core/compliance';
import { rawProtocol } from '../src';

// Raw TCP knows nothing of the protocol: a line protocol with fixed-size answers stands in for any.
protocolComplianceTests('raw', {
  protocol: rawProtocol,
  exchanges: [
    { client: Buffer.from('GET first\r\n'), server: Buffer.alloc(300, 'a') },
    { client: Buffer.from('GET second, a longer request\r\n'), server: Buffer.alloc(5000, 'b') },
    { client: Buffer.from('BYE\r\n'), server: Buffer.from('ok\r\n') },
  ],
});
