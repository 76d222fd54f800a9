import { resolve } from 'node:path';
import type { RuntimeLogger } from '../psa/logger.ts';
import type { ModelHost } from './model-host.ts';
import type { ModelEvent, ModelEvents } from './model-events.ts';

export interface ActivationResult {
  active: string;
  previous: string;
  changed: boolean;
  /** Whether the other replicas were told (false without Redis, or while it is down). */
  propagated: boolean;
}

/**
 * Which package this replica serves, and how that follows the cluster. Every switch goes
 * through here: an activation request (this replica switches, then tells the others), another
 * replica's activation (this one follows), the package last activated in the cluster (a
 * replica that starts later serves it, not PSA_MODEL), and a recalibrated package (reloaded
 * wherever it is served, and a shadow run of it ended). The host does the switching itself:
 * pools, draining, shadow runs. Without Redis (`events` null) each replica activates on its own.
 */
export class ModelActivation {
  constructor(
    private readonly host: ModelHost,
    private readonly events: ModelEvents | null,
    private readonly log: RuntimeLogger,
  ) {
    events?.listen((event) => this.follow(event));
  }

  /** Serves package `id` here, then on every other replica. */
  async activate(id: string): Promise<ActivationResult> {
    const { previous, changed } = await this.host.activate(id);
    const propagated = this.events ? await this.events.activated(id).catch(() => false) : false;
    return { active: id, previous, changed, propagated };
  }

  /** After a package's temperature file changed: reloads it if this replica serves it, and has the others do the same. */
  async recalibrated(pkg: { id: string; dir: string }): Promise<void> {
    if (resolve(pkg.dir) === this.host.active.pkg.dir) await this.host.reload();
    this.host.candidateChanged(pkg.id);
    await this.events?.reloaded(pkg.id).catch(() => false);
  }

  /** Serves the package last activated in the cluster, if it is not the one this replica started with. */
  async restore(): Promise<void> {
    const id = await this.events?.clusterActive();
    if (!id || id === this.host.activeId) return;
    this.log.info({ model: id }, 'serving the model activated in the cluster');
    await this.followActivation(id);
  }

  private follow(event: ModelEvent): void {
    if (!event.reload) return void this.followActivation(event.id);
    this.host.candidateChanged(event.id);
    if (event.id === this.host.activeId) this.host.reload().catch((err: unknown) => this.log.error({ err, model: event.id }, 'could not reload the model another replica recalibrated'));
  }

  /** Another replica's activation; one this replica cannot load is logged and it keeps serving. */
  private async followActivation(id: string): Promise<void> {
    if (id === this.host.activeId) return;
    try {
      await this.host.activate(id);
    } catch (err) {
      this.log.error({ err, model: id }, 'could not activate the model another replica activated');
    }
  }
}
