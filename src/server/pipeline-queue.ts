/**
 * Pulls before pipelines. The server runs every request on one thread, and Node's event loop
 * runs the handlers of all the sockets that became readable together one after another, in the
 * order the kernel lists them. Under push load a pull that arrived beside thirty pushes waited
 * for all of them: its own handler took under a millisecond, its wait tens (srv14's profile, the
 * bench's pull p99). So a pipeline's SQL (and the database open it may need) runs from this
 * queue instead of from the socket's handler:
 *
 * - A request is read and parsed as it arrives (body, JSON, token), then waits here. Pulls and
 *   long polls never wait here: they run from their socket's handler, as before.
 * - The queue is first come, first served across the server, and starts its requests in that
 *   order; a database's own turn queue (`HostedDatabase.inTurn`) is first come, first served
 *   too, so two pipelines to one database still run in the order they arrived (a request's
 *   turn, its stream's rules and its time share are unchanged: they are decided after it
 *   leaves this queue).
 * - Pipelines start in slices: a slice starts one pipeline from `setImmediate` (the event
 *   loop's check phase, after it has polled the sockets), and each pipeline that finishes
 *   within the slice's `sliceMs` starts the next one at once. A slice over its time ends, and
 *   the next waits for the next turn of the loop: the sockets are polled first, so a pull that
 *   arrived meanwhile waits at most for one slice (plus one pipeline, when that one alone is
 *   longer) instead of for every pipeline ahead of it.
 * - A pipeline that waits for something outside the thread (a stream's turn, a timer) does not
 *   hold the queue: the slice after it starts the next pipeline whether or not it finished.
 * - Every turn of the loop starts at least one pipeline, so pulls, however many, cannot starve
 *   pipelines: they only go first.
 *
 * The cost is one extra turn of the event loop per slice (an `epoll_wait` that does not block)
 * and, for a pipeline on an idle server, that turn's delay (microseconds).
 */

export interface PipelineQueueOptions {
  /** How long the pipelines started from one turn of the event loop may run before the sockets are polled again; 0 starts one pipeline a turn. */
  sliceMs: number;
}

/** The default slice: a pull waits about a millisecond behind pipelines, and a turn of the loop is paid every few pushes. */
export const PIPELINE_SLICE_MS = 1;

export class PipelineQueue {
  /** Pipelines waiting to start, first come first served. */
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;
  /** Counts slices; a pipeline continues the chain only if it started in the current one. */
  private slice = 0;
  private sliceEndMs = 0;

  constructor(private readonly options: PipelineQueueOptions) {
    if (!(options.sliceMs >= 0)) throw new RangeError('sliceMs must be 0 or more');
  }

  /** Pipelines waiting to start. */
  get length(): number {
    return this.waiting.length;
  }

  /** Runs `work` once every pipeline queued before it has started and the sockets were polled since. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    await new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      this.schedule();
    });
    const slice = this.slice;
    try {
      return await work();
    } finally {
      // Within its slice's time, the next pipeline starts now, without waiting for a turn of the loop.
      if (slice === this.slice && performance.now() < this.sliceEndMs) this.startNext();
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.startSlice);
  }

  private readonly startSlice = (): void => {
    this.scheduled = false;
    this.slice++;
    this.sliceEndMs = performance.now() + this.options.sliceMs;
    this.startNext();
    // The next slice comes at the next turn of the loop, whether this one's pipelines finish or wait.
    if (this.waiting.length > 0) this.schedule();
  };

  private startNext(): void {
    this.waiting.shift()?.();
  }
}
