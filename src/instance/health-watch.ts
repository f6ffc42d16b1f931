/**
 * The supervision of one running stub: a timer that reads its health word and fails the stub
 * when the word goes stale past the stub timeout, when the stub is over its memory cap, or when
 * the requests' own check (an execute past the execute timeout) says so.
 */
export interface HealthProbe {
  /** The stub set its health word since the last call (and it is cleared now). */
  takeHealth(): boolean;
  /** Why the stub is over its memory cap, or undefined. */
  memoryFault(): string | undefined;
  /** The requests in flight: a hang (its cause) or undefined. */
  checkRequests(now: number): string | undefined;
  fail(cause: string, code: 'STUBHOST_STUB_DIED' | 'STUBHOST_STUB_UNHEALTHY'): void;
}

export class HealthWatch {
  private timer?: NodeJS.Timeout;

  constructor(private readonly probe: HealthProbe, private readonly timeoutMs: number) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  start(): void {
    if (this.timer) return;
    const timeoutMs = this.timeoutMs;
    let lastHealthy = performance.now();
    const tick = Math.max(50, Math.min(250, timeoutMs / 4));
    this.timer = setInterval(() => {
      const now = performance.now();
      if (this.probe.takeHealth()) lastHealthy = now;
      if (now - lastHealthy > timeoutMs) {
        this.probe.fail(`stub is unhealthy: no health signal for ${Math.round(now - lastHealthy)} ms (stub timeout ${timeoutMs} ms)`, 'STUBHOST_STUB_UNHEALTHY');
        return;
      }
      const overMemory = this.probe.memoryFault();
      if (overMemory) {
        this.probe.fail(overMemory, 'STUBHOST_STUB_DIED');
        return;
      }
      const hang = this.probe.checkRequests(now);
      if (hang) this.probe.fail(hang, 'STUBHOST_STUB_UNHEALTHY');
    }, tick);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
