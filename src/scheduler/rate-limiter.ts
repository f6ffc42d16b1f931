/**
 * Triton's rate limiter (`--rate-limit execution_count`): an instance executes only while it holds
 * the resources its instance_group's rate_limiter names. Resources are per device unless
 * `global`; their counts come from `--rate-limit-resource name:count[:device]`, else from the
 * largest amount any loaded instance asks for (as Triton does).
 *
 * Fairness (stride scheduling): each instance carries a pass value; when resources free up, the
 * waiting instance with the lowest pass that fits goes first (ties: the longest waiter), and its
 * pass grows by its stride, max(1, priority). So under contention a priority-1 instance gets
 * about twice the executions of a priority-2 one. An instance that starts waiting with a pass
 * below the last one granted is moved up to it: idle time (or a model loaded later) earns no
 * credit, so a newcomer cannot starve the instances that were already running.
 *
 * Callers that want the share to hold must queue an instance's next acquire before releasing
 * its current grant (the Scheduler does: it dispatches the next batch, then releases), else the
 * other waiter is always alone when resources free up and the share is 1:1.
 */
import { StubhostError } from '../errors.js';

export interface ResourceNeed {
  name: string;
  count: number;
  global: boolean;
}

export interface InstanceRateSpec {
  resources: ResourceNeed[];
  priority: number;
  device: number;
}

interface Waiter {
  key: string;
  needs: Map<string, number>;
  arrived: number;
  resolve: (release: () => void) => void;
}

export class RateLimiter {
  readonly enabled: boolean;
  private readonly explicit = new Map<string, number>();
  private readonly instances = new Map<string, { model: string; needs: Map<string, number>; stride: number; pass: number }>();
  private readonly inUse = new Map<string, number>();
  /** Pass of the last grant: the floor for instances that start waiting. */
  private virtualTime = 0;
  private waiters: Waiter[] = [];
  private arrivals = 0;

  /** `resources`: `name:count[:device]` strings from the command line. */
  constructor(mode: 'off' | 'execution_count', resources: string[] = []) {
    this.enabled = mode === 'execution_count';
    for (const r of resources) {
      const m = /^([^:]+):(\d+)(?::(\d+))?$/.exec(r);
      if (!m) throw new StubhostError('STUBHOST_INVALID_ARG', `--rate-limit-resource ${JSON.stringify(r)}: expected <name>:<count>[:<device>], e.g. R1:2 or R1:2:0`);
      this.explicit.set(m[3] === undefined ? `${m[1]}` : `${m[1]}@${m[3]}`, Number(m[2]));
    }
  }

  /** Adds a model's instances; fails (naming the resource) if one asks for more than exists. */
  register(model: string, instances: { name: string; spec: InstanceRateSpec }[]): void {
    if (!this.enabled) return;
    for (const { name, spec } of instances) {
      const needs = new Map<string, number>();
      for (const r of spec.resources) {
        if (!r.name || r.count <= 0) continue;
        const key = r.global ? r.name : `${r.name}@${spec.device}`;
        const available = this.explicit.get(key) ?? this.explicit.get(r.name);
        if (available !== undefined && r.count > available) {
          throw new StubhostError('STUBHOST_CONFIG', `model '${model}' instance '${name}' asks for ${r.count} of rate-limiter resource '${r.name}'${r.global ? ' (global)' : ` on device ${spec.device}`}, but only ${available} exist; lower the count in instance_group.rate_limiter or raise --rate-limit-resource ${r.name}:<count>`);
        }
        needs.set(key, (needs.get(key) ?? 0) + r.count);
      }
      this.instances.set(`${model}/${name}`, { model, needs, stride: Math.max(1, spec.priority), pass: this.virtualTime });
    }
  }

  unregister(model: string): void {
    for (const [key, inst] of this.instances) if (inst.model === model) this.instances.delete(key);
  }

  /** Resolves with a release function once the instance holds its resources. */
  acquire(model: string, instance: string): Promise<() => void> | (() => void) {
    const key = `${model}/${instance}`;
    const inst = this.instances.get(key);
    if (!this.enabled || !inst || inst.needs.size === 0) return () => {};
    if (inst.pass < this.virtualTime) inst.pass = this.virtualTime;
    return new Promise((resolve) => {
      this.waiters.push({ key, needs: inst.needs, arrived: this.arrivals++, resolve });
      this.grant();
    });
  }

  private capacity(resource: string): number {
    const explicit = this.explicit.get(resource) ?? this.explicit.get(resource.split('@')[0]!);
    if (explicit !== undefined) return explicit;
    let max = 0;
    for (const inst of this.instances.values()) max = Math.max(max, inst.needs.get(resource) ?? 0);
    return max;
  }

  private fits(needs: Map<string, number>): boolean {
    for (const [r, n] of needs) if ((this.inUse.get(r) ?? 0) + n > this.capacity(r)) return false;
    return true;
  }

  private grant(): void {
    for (;;) {
      const passOf = (w: Waiter): number => this.instances.get(w.key)?.pass ?? this.virtualTime;
      const order = [...this.waiters].sort((a, b) => passOf(a) - passOf(b) || a.arrived - b.arrived);
      const next = order.find((w) => this.fits(w.needs));
      if (!next) return;
      this.waiters = this.waiters.filter((w) => w !== next);
      for (const [r, n] of next.needs) this.inUse.set(r, (this.inUse.get(r) ?? 0) + n);
      const inst = this.instances.get(next.key);
      if (inst) {
        this.virtualTime = Math.max(this.virtualTime, inst.pass);
        inst.pass += inst.stride;
      }
      let released = false;
      next.resolve(() => {
        if (released) return;
        released = true;
        for (const [r, n] of next.needs) this.inUse.set(r, (this.inUse.get(r) ?? 0) - n);
        this.grant();
      });
    }
  }
}
