/**
 * A private Postfix instance as the benchmark's anchor: `postfix -c DIR start-fg` with its own main.cf /
 * master.cf, queue_directory and data_directory under a temp dir, listening on 127.0.0.1 only, relaying
 * everything to the bench's TLS upstream (implicit TLS, smtp_tls_security_level = encrypt, the bench CA
 * trusted) with SASL client auth. The package's own instance is never configured or started.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PostfixUpstream {
  port: number;
  caFile: string;
  user: string;
  password: string;
}

/** Postfix's version, or the reason it cannot run here. */
export async function postfixAvailable(): Promise<{ version: string } | { reason: string }> {
  try {
    await access('/usr/sbin/postfix');
    const { stdout } = await run('/usr/sbin/postconf', ['-d', '-h', 'mail_version']);
    const { stdout: user } = await run('id', ['-u', 'postfix']);
    if (process.getuid?.() !== 0) return { reason: 'Postfix needs root to start its own instance' };
    if (!user.trim()) return { reason: 'the postfix user is missing' };
    return { version: stdout.trim() };
  } catch {
    return {
      reason:
        'Postfix is not installed (echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; DEBIAN_FRONTEND=noninteractive apt-get install -y postfix)',
    };
  }
}

const MASTER_CF = (port: number) => `# service type private unpriv chroot wakeup maxproc command
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

const MAIN_CF = (dir: string, upstream: PostfixUpstream) => `# scanrelay bench: a private relay instance (see bench/postfix.ts)
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
maillog_file = ${dir}/maillog
maillog_file_prefixes = ${dir}
myhostname = postfix-bench.localdomain
mydomain = localdomain
mydestination =
local_transport = error:no local delivery
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
message_size_limit = 40000000
biff = no
relayhost = [127.0.0.1]:${upstream.port}
smtp_dns_support_level = disabled
smtp_tls_wrappermode = yes
smtp_tls_security_level = encrypt
smtp_tls_CAfile = ${upstream.caFile}
smtp_tls_session_cache_database = btree:\${data_directory}/smtp_scache
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = static:${upstream.user}:${upstream.password}
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
smtp_destination_concurrency_limit = 10
`;

export interface PostfixInstance {
  port: number;
  dir: string;
  /** The master process (the command run under `wrapper`). */
  child: ChildProcess;
  /** The master's pid (the root of its process tree). */
  masterPid: number;
  stop(): Promise<void>;
}

/**
 * Configures and starts a private instance in a new directory under `parentDir` (which must be
 * traversable by the postfix user); `wrapper` goes in front of `postfix start-fg` (cgroup, strace).
 */
export async function startPostfix(upstream: PostfixUpstream, port: number, parentDir: string, wrapper: string[] = []): Promise<PostfixInstance> {
  const dir = await mkdtemp(join(parentDir, 'postfix-'));
  // Postfix daemons run as the postfix user and must traverse the directory.
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'queue'));
  await mkdir(join(dir, 'data'));
  await writeFile(join(dir, 'main.cf'), MAIN_CF(dir, upstream));
  await writeFile(join(dir, 'master.cf'), MASTER_CF(port));
  await run('/usr/sbin/postfix', ['-c', dir, 'set-permissions']).catch(() => undefined);
  const [command, ...args] = [...wrapper, '/usr/sbin/postfix', '-c', dir, 'start-fg'];
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await run('/usr/sbin/postfix', ['-c', dir, 'stop']).catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await run('/usr/sbin/postfix', ['-c', dir, 'abort']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForGreeting(port, 30_000, () => (child.exitCode !== null ? `postfix exited: ${stderr.slice(0, 2000)}` : undefined));
    const { stdout } = await run('cat', [join(dir, 'queue', 'pid', 'master.pid')]);
    return { port, dir, child, masterPid: Number(stdout.trim()), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForGreeting(port: number, timeoutMs: number, failed: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed();
    if (why) throw new Error(why);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.setEncoding('latin1');
      socket.once('data', (data: string) => {
        socket.end('QUIT\r\n');
        resolve(data.startsWith('220'));
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`Postfix did not answer on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
