/**
 * systemd's notification protocol (sd_notify), for the gateway run as a `Type=notify` service:
 * READY=1 once started, WATCHDOG=1 at half the watchdog interval while the event loop turns,
 * STOPPING=1 when a stop begins. Node's dgram has no Unix datagram sockets, so a message is sent
 * by a short-lived helper: `systemd-notify` where it is installed (every systemd machine), and
 * otherwise /usr/bin/python3's socket module (machines, CI among them, with a notify socket but
 * no systemd). The unit says NotifyAccess=all, since the sender is a child of the gateway.
 * Without NOTIFY_SOCKET nothing is sent: the gateway is not under systemd.
 */
import { execFile } from 'node:child_process';
import { fail } from '../../sdk/errors.js';

/** Sends one datagram to the socket named as systemd names it (a path, or "@name" for an abstract one). */
const PYTHON_SEND = [
  'import socket, sys',
  'address = sys.argv[1]',
  "address = '\\0' + address[1:] if address.startswith('@') else address",
  'sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  'sock.connect(address)',
  'sock.sendall(sys.argv[2].encode())',
].join('\n');

export interface NotifierOptions {
  /** Where NOTIFY_SOCKET and WATCHDOG_USEC are read; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** Reports a message that could not be sent (the service manager then acts on its absence). */
  onError?: (error: Error) => void;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: 10_000 }, (error) => (error ? reject(error) : resolve()));
  });
}

export class SystemdNotifier {
  readonly #socket: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #watchdogMs: number | undefined;
  readonly #onError: (error: Error) => void;
  #timer: NodeJS.Timeout | undefined;
  #useSystemdNotify = true;

  private constructor(socket: string, watchdogMs: number | undefined, options: NotifierOptions) {
    this.#socket = socket;
    this.#watchdogMs = watchdogMs;
    this.#env = options.env ?? process.env;
    this.#onError = options.onError ?? ((error) => process.stderr.write(`systemd notification failed: ${error.message}\n`));
  }

  /** A notifier when NOTIFY_SOCKET is set, undefined otherwise. */
  static fromEnv(options: NotifierOptions = {}): SystemdNotifier | undefined {
    const env = options.env ?? process.env;
    const socket = env.NOTIFY_SOCKET;
    if (!socket) return undefined;
    if (!socket.startsWith('/') && !socket.startsWith('@'))
      throw fail('E_OPTION', `NOTIFY_SOCKET is a socket path or an abstract name ("@..."), not ${JSON.stringify(socket)}`);
    let watchdogMs: number | undefined;
    if (env.WATCHDOG_USEC !== undefined) {
      const usec = Number(env.WATCHDOG_USEC);
      if (!Number.isInteger(usec) || usec <= 0)
        throw fail('E_OPTION', `WATCHDOG_USEC is a positive number of microseconds, not ${JSON.stringify(env.WATCHDOG_USEC)}`);
      // systemd sets WATCHDOG_PID beside it; a watchdog meant for another process is not ours to feed.
      if (env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid) watchdogMs = Math.max(1, Math.floor(usec / 1000));
    }
    return new SystemdNotifier(socket, watchdogMs, options);
  }

  /** Sends one message; never rejects (a failure goes to onError). */
  async send(message: string): Promise<void> {
    try {
      if (this.#useSystemdNotify) {
        try {
          await run('systemd-notify', [message], { ...this.#env, NOTIFY_SOCKET: this.#socket });
          return;
        } catch (error) {
          // Absent here (ENOENT), or refusing outside a systemd-booted machine: python3 does the same.
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') this.#useSystemdNotify = false;
        }
      }
      await run('/usr/bin/python3', ['-c', PYTHON_SEND, this.#socket, message], this.#env);
    } catch (error) {
      this.#onError(error as Error);
    }
  }

  /** READY=1, then WATCHDOG=1 at half the interval systemd asked for (if it asked). */
  async ready(): Promise<void> {
    await this.send('READY=1');
    if (this.#watchdogMs === undefined || this.#timer) return;
    this.#timer = setInterval(() => void this.send('WATCHDOG=1'), Math.max(1, Math.floor(this.#watchdogMs / 2)));
    this.#timer.unref();
  }

  async stopping(): Promise<void> {
    this.close();
    await this.send('STOPPING=1');
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
