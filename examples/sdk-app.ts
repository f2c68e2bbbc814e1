/**
 * A complete app on the TypeScript SDK, as docs/apps.md shows it: `orders` counts the orders it
 * receives and forwards each one to billing. Its state is two numbers; a checkpoint captures them
 * and a rollback puts them back. test/integration/local-api.test.ts runs it against the local API.
 *
 *   npx tsx examples/sdk-app.ts /run/snapshot-agent/agent.sock
 */
import { connectApp, type ConnectedApp } from '../agent/sdk/index.js';

export interface OrdersState {
  orders: number;
  totalCents: number;
}

export async function startOrdersApp(socketPath: string): Promise<{ app: ConnectedApp; state: () => OrdersState }> {
  let state: OrdersState = { orders: 0, totalCents: 0 };
  const billing = 'srv1/orders->srv2/billing';

  const app: ConnectedApp = await connectApp({
    socketPath,
    app: 'orders',
    // One message at a time, in channel order: the next comes when this promise settles.
    onMessage: async (_channel, payload) => {
      const order = JSON.parse(new TextDecoder().decode(payload)) as { cents: number };
      state = { orders: state.orders + 1, totalCents: state.totalCents + order.cents };
      // Resolves once the message is on the wire; awaiting it passes backpressure upstream.
      await app.send(billing, payload);
    },
    // The app's point of the cut: serialise synchronously, before any await.
    snapshot: () => new TextEncoder().encode(JSON.stringify(state)),
    // Replace the state, never merge: whatever happened since the checkpoint is abandoned.
    restore: (bytes) => {
      state = JSON.parse(new TextDecoder().decode(bytes)) as OrdersState;
    },
    // No reconnect: if the agent goes away, exit and let the supervisor restart the app.
    onDisconnect: (error) => {
      console.error(`orders: ${error.message}`);
      process.exit(1);
    },
  });
  return { app, state: () => state };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const socketPath = process.argv[2] ?? '/run/snapshot-agent/agent.sock';
  const { app } = await startOrdersApp(socketPath);
  console.log(`orders attached: inputs ${app.inputs.join(', ')}; outputs ${app.outputs.join(', ')}`);
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
  process.once('SIGINT', () => void app.close().then(() => process.exit(0)));
}
