import { protocolComplianceTests } from '@tcpcopy/core/compliance';
import { rawProtocol } from '../src';

// Raw TCP knows nothing of the protocol: a line protocol with fixed-size answers stands in for any.
// Its server-first case greets with as many bytes as the online server did, so counting bytes suffices
// (a login that depends on the greeting's content needs a protocol that knows it, as MySQL's does).
protocolComplianceTests('raw', {
  protocol: rawProtocol,
  exchanges: [
    { client: Buffer.from('GET first\r\n'), server: Buffer.alloc(300, 'a') },
    { client: Buffer.from('GET second, a longer request\r\n'), server: Buffer.alloc(5000, 'b') },
    { client: Buffer.from('BYE\r\n'), server: Buffer.from('ok\r\n') },
  ],
  serverFirst: {
    onlineGreeting: Buffer.from('220 online ready\r\n'),
    targetGreeting: Buffer.from('220 target ready\r\n'),
    exchanges: [
      { client: Buffer.from('LOGIN user\r\n'), server: Buffer.from('230 in\r\n') },
      { client: Buffer.from('LIST\r\n'), server: Buffer.alloc(2000, 'l') },
      { client: Buffer.from('QUIT\r\n'), server: Buffer.from('221 bye\r\n') },
    ],
    // Captured after the greeting, a connection gives no sign that the server speaks first.
    resume: false,
  },
});
