// The MySQL wire decoders' fuzz properties (wire.fuzz.ts), with their fixed seed.
import { fuzzSpec } from '@tcpcopy/core/fuzz';
import { suite } from './wire.fuzz';

fuzzSpec(suite);
