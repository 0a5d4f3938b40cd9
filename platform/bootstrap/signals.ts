/**
 * SIGTERM and SIGINT in the gateway process. Installed first thing (bin/run.mjs, before the
 * gateway's modules load), so that a signal during start-up is noted instead of killing the
 * process outright: start-up runs to its end, a safe point, and the gateway then stops in
 * order. Once stopping, a further signal is reported and otherwise ignored: the shutdown has a
 * deadline of its own, and a second SIGTERM 20 ms after the first must not cut it (issue 17).
 * Under the supervisor the first signal's one echo (a Ctrl-C reaches the whole process group,
 * and the supervisor passes its own on) is not reported.
 * A stop may also be asked for without a signal (the supervisor's channel closing).
 *
 * Signals belong to the process, so this is the one piece of process-wide state: one handler
 * pair, however often it is asked for.
 */

export interface StopRequest {
  /** Settles with what asked for the stop (a signal's name or a reason), at once if it was asked already. */
  readonly requested: Promise<string>;
  /** Whether a stop was asked for. */
  readonly isRequested: boolean;
  /** Asks for a stop as a signal would. */
  request(reason: string): void;
  /** What to do with each signal after the first (the gateway logs it). */
  onRepeat(report: (signal: string) => void): void;
}

let held: StopRequest | undefined;

export function holdStopSignals(): StopRequest {
  held ??= create();
  return held;
}

function create(): StopRequest {
  let resolve!: (reason: string) => void;
  const requested = new Promise<string>((settle) => {
    resolve = settle;
  });
  let isRequested = false;
  let report: (signal: string) => void = (signal) => process.stderr.write(`${signal} again while stopping: ignored, the shutdown goes on\n`);
  // Under the supervisor one Ctrl-C arrives twice: the terminal signals the whole process group,
  // and the supervisor passes on the one it got. That echo of the first signal is no second request.
  let echoes = process.env.ISOGATE_SUPERVISED === '1' ? 1 : 0;
  let first: string | undefined;
  const request = (reason: string): void => {
    if (isRequested) {
      if (reason === first && echoes > 0) echoes -= 1;
      else report(reason);
      return;
    }
    isRequested = true;
    first = reason;
    resolve(reason);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => request(signal));
  return {
    requested,
    get isRequested() {
      return isRequested;
    },
    request,
    onRepeat: (next) => {
      report = next;
    },
  };
}
