// --user NAME (tcpcopy and intercept): start as root, open what needs root (raw sockets, libpcap
// handles, the listening port, the log and pid files), then become NAME for good. Open descriptors
// stay usable after setuid(); only what is opened later is checked against NAME's rights.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { UsageError } from './process-control';

export interface UnprivilegedUser {
  name: string;
  uid: number;
  gid: number;
}

/** The passwd entry of `name` (or of a numeric uid), through NSS (getent) and, failing that, /etc/passwd. */
function passwdEntry(name: string): string | null {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8', timeout: 5000 });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim().split('\n')[0];
  if (r.error === undefined) return null; // getent ran: no such user
  try {
    const byName = (l: string): boolean => l.split(':')[0] === name || (/^\d+$/.test(name) && l.split(':')[2] === name);
    return fs.readFileSync('/etc/passwd', 'utf8').split('\n').find(byName) ?? null;
  } catch {
    return null;
  }
}

/**
 * Checks --user before anything is opened: the user must exist and the process must be root
 * (only root can become another user).
 */
export function resolveUser(name: string, command: string): UnprivilegedUser {
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/.test(name)) {
    throw new UsageError(`--user "${name}" is not a user name (give the name of a user from /etc/passwd, e.g. nobody)`);
  }
  const entry = passwdEntry(name);
  if (!entry) throw new UsageError(`--user ${name}: no such user on this host (create it, or give an existing one such as nobody)`);
  const [user, , uid, gid] = entry.split(':');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UsageError(`--user ${name}: ${command} must start as root to switch to another user ` +
      '(run it as root, or leave out --user)');
  }
  return { name: user, uid: Number(uid), gid: Number(gid) };
}

/**
 * Becomes `user` for good: supplementary groups, group, then user (in that order: once the uid is
 * no longer 0, the groups can no longer be changed). Throws if root could be regained.
 */
export function dropPrivileges(user: UnprivilegedUser): void {
  try {
    // initgroups() exists in Node on POSIX, but @types/node does not declare it.
    const withInitgroups = process as NodeJS.Process & { initgroups?: (user: string, extraGroup: number) => void };
    if (withInitgroups.initgroups) withInitgroups.initgroups(user.name, user.gid);
    else process.setgroups!([user.gid]);
    process.setgid!(user.gid);
    process.setuid!(user.uid);
  } catch (err) {
    throw new UsageError(`cannot switch to user ${user.name}: ${(err as Error).message} (check the user, or leave out --user)`);
  }
  if (process.getuid!() !== user.uid || process.geteuid!() !== user.uid || process.getegid!() !== user.gid) {
    throw new UsageError(`switching to user ${user.name} did not take (uid ${process.geteuid!()}): leave out --user`);
  }
  if (user.uid !== 0) {
    let regained = false;
    try {
      process.setuid!(0);
      regained = true;
    } catch {
      // Expected: root is gone for good.
    }
    if (regained) throw new UsageError(`after switching to user ${user.name} root could be regained: refusing to go on`);
  }
}
