// Classic BPF (the kernel's SO_ATTACH_FILTER) for the raw-socket capture: the same selection as
// captureFilter's pcap text, compiled here because a raw IP socket has no libpcap to compile it.
// A raw IP socket's filter sees the packet from its IPv4 header on, so offsets are from there.
import * as os from 'node:os';

/** One instruction, as struct sock_filter: opcode, jump offsets if true / false (to the next instruction + n), constant. */
export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Opcode parts (linux/bpf_common.h).
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_ABS = 0x20;
export const BPF_IND = 0x40;
export const BPF_MSH = 0xa0;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JSET = 0x40;
export const BPF_K = 0x00;

/** The kernel's limit on a program's length (BPF_MAXINSNS). */
export const BPF_MAX_INSTRUCTIONS = 4096;
/** Returned for an accepted packet: keep all of it. */
const ACCEPT_ALL = 0xffffffff;

/** What the program selects per transfer: captureFilter's inputs. */
export interface BpfTransfer {
  readonly onlineIp: number;
  readonly onlinePort: number;
  readonly targetIp: number;
  readonly targetPort: number;
}

const op = (code: number, k: number, jt = 0, jf = 0): BpfInstruction => ({ code, jt, jf, k: k >>> 0 });

/**
 * The client→server packets of the transfers (-x), as captureFilter selects them: TCP, not a
 * later fragment, to the online port [and address], and, when target and online ports are alike
 * (on another address), not to the target (on the online host that is our own output).
 */
export function transferBpfProgram(transfers: readonly BpfTransfer[]): BpfInstruction[] {
  if (transfers.length === 0) throw new RangeError('a capture filter needs at least one transfer');
  const prog: BpfInstruction[] = [
    op(BPF_LD | BPF_B | BPF_ABS, 9), // protocol
    op(BPF_JMP | BPF_JEQ | BPF_K, 6, 1, 0),
    op(BPF_RET | BPF_K, 0),
    op(BPF_LD | BPF_H | BPF_ABS, 6), // flags and fragment offset
    op(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 0, 1),
    op(BPF_RET | BPF_K, 0),
    op(BPF_LDX | BPF_B | BPF_MSH, 0), // X = IPv4 header length
  ];
  for (const t of transfers) {
    // One block per transfer; every "no" jumps to the next block (the last one drops).
    const checks: Array<(toNext: number) => BpfInstruction[]> = [];
    checks.push((toNext) => [op(BPF_LD | BPF_H | BPF_IND, 2), op(BPF_JMP | BPF_JEQ | BPF_K, t.onlinePort, 0, toNext)]);
    if (t.onlineIp) checks.push((toNext) => [op(BPF_LD | BPF_W | BPF_ABS, 16), op(BPF_JMP | BPF_JEQ | BPF_K, t.onlineIp, 0, toNext)]);
    if (t.onlinePort === t.targetPort && t.onlineIp !== t.targetIp) {
      checks.push((toNext) => [op(BPF_LD | BPF_W | BPF_ABS, 16), op(BPF_JMP | BPF_JEQ | BPF_K, t.targetIp, toNext, 0)]);
    }
    // Each check is two instructions and the block ends with one return.
    const blockLength = checks.length * 2 + 1;
    checks.forEach((check, i) => prog.push(...check(blockLength - 2 * (i + 1))));
    prog.push(op(BPF_RET | BPF_K, ACCEPT_ALL));
  }
  prog.push(op(BPF_RET | BPF_K, 0));
  if (prog.length > BPF_MAX_INSTRUCTIONS) {
    throw new RangeError(`the capture filter for ${transfers.length} transfers has ${prog.length} instructions, more than the kernel's ${BPF_MAX_INSTRUCTIONS} (give fewer -x transfers)`);
  }
  return prog;
}

/** The program as the kernel reads it: struct sock_filter[] in this machine's byte order. */
export function encodeBpfProgram(prog: readonly BpfInstruction[]): Buffer {
  const out = Buffer.alloc(prog.length * 8);
  const le = os.endianness() === 'LE';
  prog.forEach((ins, i) => {
    const at = i * 8;
    if (le) out.writeUInt16LE(ins.code, at);
    else out.writeUInt16BE(ins.code, at);
    out[at + 2] = ins.jt;
    out[at + 3] = ins.jf;
    if (le) out.writeUInt32LE(ins.k >>> 0, at + 4);
    else out.writeUInt32BE(ins.k >>> 0, at + 4);
  });
  return out;
}
